package apis

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// swaggerDoc is the part of the OpenAPI v2 document the tests look at.
type swaggerDoc struct {
	Swagger string `json:"swagger"`
	Info    struct {
		Title   string `json:"title"`
		Version string `json:"version"`
	} `json:"info"`
	// path -> lowercase HTTP method -> operation
	Paths               map[string]map[string]operation `json:"paths"`
	SecurityDefinitions map[string]struct {
		Type string `json:"type"`
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"securityDefinitions"`
	Security    []map[string][]string      `json:"security"`
	Definitions map[string]json.RawMessage `json:"definitions"`
}

type operation struct {
	OperationID string `json:"operationId"`
	// nil: the document-wide requirement applies; empty: public.
	Security   *[]map[string][]string `json:"security"`
	Parameters []parameter            `json:"parameters"`
}

type parameter struct {
	Name string `json:"name"`
	In   string `json:"in"`
}

func loadDoc(t *testing.T) swaggerDoc {
	t.Helper()
	var doc swaggerDoc
	if err := json.Unmarshal(OpenAPIDocument(), &doc); err != nil {
		t.Fatalf("OpenAPI document does not parse: %v", err)
	}
	return doc
}

// restSurface is every (method, path) of the REST contract: the table of
// DESIGN.md section 3 plus the routes the API contracts add to it.
// grpc-gateway renders path parameters as {field_name}.
var restSurface = []struct {
	method, path, operationID string
}{
	// DESIGN.md section 3.
	{"POST", "/v1/auth/register", "UserService_Register"},
	{"POST", "/v1/auth/login", "UserService_Login"},
	{"POST", "/v1/auth/refresh", "UserService_RefreshToken"},
	{"POST", "/v1/auth/logout", "UserService_Logout"},
	{"GET", "/v1/users/me", "UserService_GetProfile"},
	{"GET", "/v1/users/{user_id}", "UserService_GetProfile2"},
	{"PATCH", "/v1/users/me", "UserService_UpdateProfile"},
	{"GET", "/v1/users", "UserService_SearchUsers"},
	{"POST", "/v1/users/me/friends", "UserService_AddFriend"},
	{"GET", "/v1/users/me/friends", "UserService_ListFriends"},
	{"DELETE", "/v1/users/me/friends/{user_id}", "UserService_RemoveFriend"},
	{"POST", "/v1/channels", "ChatService_CreateChannel"},
	{"GET", "/v1/channels", "ChatService_ListChannels"},
	{"GET", "/v1/channels/{channel_id}", "ChatService_GetChannel"},
	{"POST", "/v1/channels/{channel_id}/members", "ChatService_JoinChannel"},
	{"DELETE", "/v1/channels/{channel_id}/members/me", "ChatService_LeaveChannel"},
	{"POST", "/v1/channels/{channel_id}/messages", "ChatService_SendMessage"},
	{"GET", "/v1/channels/{channel_id}/messages", "ChatService_GetMessages"},
	{"GET", "/v1/messages:search", "ChatService_SearchMessages"},
	{"PUT", "/v1/users/me/status", "PresenceService_UpdateStatus"},
	{"GET", "/v1/users/{user_id}/status", "PresenceService_GetUserStatus"},
	{"GET", "/v1/presence/online", "PresenceService_GetOnlineUsers"},
	{"GET", "/v1/users/me/notifications", "NotificationService_GetNotificationHistory"},
	{"PUT", "/v1/users/me/notification-preferences", "NotificationService_UpdateNotificationPreferences"},
	{"POST", "/v1/users/me/devices", "NotificationService_RegisterDevice"},
	{"GET", "/.well-known/jwks.json", "UserService_GetJWKS"},
	// Added by the API contracts.
	{"GET", "/v1/users:batchGet", "UserService_BatchGetUsers"},
	{"GET", "/v1/channels:browse", "ChatService_BrowseChannels"},
	{"DELETE", "/v1/channels/{channel_id}/members/{user_id}", "ChatService_RemoveMember"},
	{"GET", "/v1/channels/{channel_id}/members", "ChatService_ListMembers"},
	{"POST", "/v1/channels/{channel_id}/members/{user_id}:setRole", "ChatService_SetMemberRole"},
	{"PATCH", "/v1/channels/{channel_id}/messages/{message_id}", "ChatService_EditMessage"},
	{"DELETE", "/v1/channels/{channel_id}/messages/{message_id}", "ChatService_DeleteMessage"},
	{"POST", "/v1/channels/{channel_id}/read", "ChatService_MarkRead"},
	{"GET", "/v1/attachments/{attachment_id}:info", "ChatService_GetAttachment"},
	{"GET", "/v1/presence/stream", "PresenceService_SubscribeToPresence"},
	{"POST", "/v1/notifications:push", "NotificationService_SendPushNotification"},
	{"POST", "/v1/notifications:email", "NotificationService_SendEmail"},
	{"GET", "/v1/users/me/notification-preferences", "NotificationService_GetNotificationPreferences"},
	{"DELETE", "/v1/users/me/devices/{device_id}", "NotificationService_UnregisterDevice"},
	{"GET", "/v1/users/me/devices", "NotificationService_ListDevices"},
	{"GET", "/v1/notifications/webpush-config", "NotificationService_GetWebPushConfig"},
	{"GET", "/v1/admin/events", "EventBusService_ListEvents"},
	{"GET", "/v1/admin/events/{event_id}", "EventBusService_GetEvent"},
	{"GET", "/v1/admin/dead-letters", "EventBusService_ListDeadLetters"},
	{"POST", "/v1/admin/dead-letters/{dead_letter_id}:retry", "EventBusService_RetryDeadLetter"},
	{"DELETE", "/v1/admin/dead-letters/{dead_letter_id}", "EventBusService_DiscardDeadLetter"},
}

// publicOperations need no bearer token; everything else does.
var publicOperations = []string{
	"UserService_Register",
	"UserService_Login",
	"UserService_RefreshToken",
	"UserService_GetJWKS",
}

func TestOpenAPIDocumentHeader(t *testing.T) {
	doc := loadDoc(t)
	if doc.Swagger != "2.0" {
		t.Errorf("swagger = %q, want 2.0", doc.Swagger)
	}
	if doc.Info.Title != "Parley API" || doc.Info.Version != "1.0.0" {
		t.Errorf("info = %+v, want Parley API 1.0.0", doc.Info)
	}
}

func TestOpenAPIDocumentHasRESTSurface(t *testing.T) {
	doc := loadDoc(t)
	for _, r := range restSurface {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			item, ok := doc.Paths[r.path]
			if !ok {
				t.Fatalf("path %s missing", r.path)
			}
			op, ok := item[strings.ToLower(r.method)]
			if !ok {
				t.Fatalf("%s %s missing; the path has %v", r.method, r.path, keys(item))
			}
			if op.OperationID != r.operationID {
				t.Errorf("operationId = %q, want %q", op.OperationID, r.operationID)
			}
			// Every {param} of the path is declared as a path parameter.
			for _, m := range regexp.MustCompile(`\{([a-z_]+)\}`).FindAllStringSubmatch(r.path, -1) {
				if !slices.Contains(op.Parameters, parameter{Name: m[1], In: "path"}) {
					t.Errorf("path parameter %s not declared", m[1])
				}
			}
		})
	}
}

// TestOpenAPIDocumentHasNoExtraOperations keeps restSurface complete, so that a
// route added to a proto is also added to the contract list above (and the
// internal RPCs stay off REST).
func TestOpenAPIDocumentHasNoExtraOperations(t *testing.T) {
	doc := loadDoc(t)
	want := map[string]bool{}
	for _, r := range restSurface {
		want[r.method+" "+r.path] = true
	}
	for path, item := range doc.Paths {
		for method, op := range item {
			key := strings.ToUpper(method) + " " + path
			if !want[key] {
				t.Errorf("unexpected operation %s (%s)", key, op.OperationID)
			}
		}
	}
	for _, internal := range []string{"CheckAccess", "UploadAttachment", "DownloadAttachment", "Connect", "Disconnect", "Heartbeat"} {
		for path, item := range doc.Paths {
			for _, op := range item {
				if strings.HasSuffix(op.OperationID, "_"+internal) {
					t.Errorf("internal RPC %s is exposed at %s", internal, path)
				}
			}
		}
	}
}

func TestOpenAPIDocumentOperationIDsAreUnique(t *testing.T) {
	doc := loadDoc(t)
	seen := map[string]string{}
	for path, item := range doc.Paths {
		for method, op := range item {
			where := strings.ToUpper(method) + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
				continue
			}
			if prev, dup := seen[op.OperationID]; dup {
				t.Errorf("operationId %s used by %s and %s", op.OperationID, prev, where)
			}
			seen[op.OperationID] = where
		}
	}
}

func TestOpenAPIDocumentSecurity(t *testing.T) {
	doc := loadDoc(t)
	bearer, ok := doc.SecurityDefinitions["bearer"]
	if !ok {
		t.Fatalf("security definition bearer missing; have %v", doc.SecurityDefinitions)
	}
	if bearer.Type != "apiKey" || bearer.In != "header" || bearer.Name != "Authorization" {
		t.Errorf("bearer = %+v, want apiKey in header Authorization", bearer)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Errorf("document security = %v, want bearer by default", doc.Security)
	}
	for path, item := range doc.Paths {
		for method, op := range item {
			public := slices.Contains(publicOperations, op.OperationID)
			switch {
			case public && (op.Security == nil || len(*op.Security) != 0):
				t.Errorf("%s %s (%s) must be public (security: []), has %v", method, path, op.OperationID, op.Security)
			case !public && op.Security != nil:
				t.Errorf("%s %s (%s) overrides security with %v; only %v may", method, path, op.OperationID, *op.Security, publicOperations)
			}
		}
	}
}

// TestOpenAPIDocumentUsesProtoFieldNames checks the JSON names documented are
// the snake_case proto names the gateway marshals (DESIGN.md section 3).
func TestOpenAPIDocumentUsesProtoFieldNames(t *testing.T) {
	doc := loadDoc(t)
	tests := []struct {
		definition string
		fields     []string
	}{
		{"RegisterResponse", []string{"user", "access_token", "refresh_token", "expires_at", "refresh_expires_at"}},
		{"User", []string{"id", "username", "email", "display_name", "avatar_url", "status_message", "roles", "created_at", "updated_at"}},
		{"Message", []string{"id", "channel_id", "seq", "user_id", "content", "type", "metadata", "client_msg_id", "attachment", "created_at", "edited_at", "deleted"}},
		{"Presence", []string{"user_id", "status", "last_seen", "device_count", "status_message"}},
		{"JSONWebKey", []string{"kty", "crv", "x", "kid", "use", "alg"}},
	}
	for _, tt := range tests {
		t.Run(tt.definition, func(t *testing.T) {
			raw, ok := doc.Definitions[tt.definition]
			if !ok {
				t.Fatalf("definition %s missing", tt.definition)
			}
			var def struct {
				Properties map[string]json.RawMessage `json:"properties"`
			}
			if err := json.Unmarshal(raw, &def); err != nil {
				t.Fatal(err)
			}
			got := keys(def.Properties)
			slices.Sort(got)
			want := slices.Clone(tt.fields)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("properties = %v, want %v", got, want)
			}
		})
	}
}

// TestOpenAPIDocumentReferencesResolve catches dangling $refs, for example
// after a naming-strategy change of protoc-gen-openapiv2.
func TestOpenAPIDocumentReferencesResolve(t *testing.T) {
	doc := loadDoc(t)
	refs := regexp.MustCompile(`"\$ref":\s*"#/definitions/([^"]+)"`).FindAllSubmatch(OpenAPIDocument(), -1)
	if len(refs) == 0 {
		t.Fatal("no $ref found at all")
	}
	for _, m := range refs {
		if _, ok := doc.Definitions[string(m[1])]; !ok {
			t.Errorf("$ref to missing definition %s", m[1])
		}
	}
	if _, ok := doc.Definitions["Status"]; !ok {
		t.Error("error model definition Status (google.rpc.Status) missing")
	}
}

func TestOpenAPIDocumentReturnsACopy(t *testing.T) {
	first := OpenAPIDocument()
	if len(first) == 0 {
		t.Fatal("empty document")
	}
	first[0] = 'X'
	if second := OpenAPIDocument(); second[0] == 'X' {
		t.Error("modifying the returned document changed the embedded one")
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
