package chatservice

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
)

// restServer is the gateway's REST edge for the chat service, built the
// way gateway/internal/rest builds it: grpc-gateway over the gRPC client,
// proto field names, unknown fields rejected.
func (f *fixture) restServer(t testing.TB) *httptest.Server {
	t.Helper()
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}))
	if err := chatv1.RegisterChatServiceHandlerClient(t.Context(), mux, f.client); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type restClient struct {
	t    testing.TB
	base string
}

// do sends a request as user and decodes the JSON answer into a map.
func (c restClient) do(user, method, path, body string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer tok-"+user)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
	}
	return resp.StatusCode, out
}

func TestRESTSurface(t *testing.T) {
	f := newFixture(t)
	c := restClient{t: t, base: f.restServer(t).URL}

	code, body := c.do("ann", "POST", "/v1/channels", `{"name":"rest","type":"group","member_ids":["ben"]}`)
	if code != http.StatusOK {
		t.Fatalf("create: %d %v", code, body)
	}
	ch := body["channel"].(map[string]any)
	id := ch["id"].(string)
	if ch["created_by"] != "ann" || ch["member_count"] != "2" {
		t.Fatalf("channel JSON %v", ch)
	}

	code, body = c.do("ben", "POST", "/v1/channels/"+id+"/messages", `{"content":"über REST","client_msg_id":"r1","metadata":{"k":"v"}}`)
	if code != http.StatusOK {
		t.Fatalf("send: %d %v", code, body)
	}
	msg := body["message"].(map[string]any)
	if msg["seq"] != "1" || msg["channel_id"] != id || msg["user_id"] != "ben" || msg["client_msg_id"] != "r1" {
		t.Fatalf("message JSON %v", msg)
	}

	code, body = c.do("ann", "GET", "/v1/channels/"+id+"/messages?after_seq=0&limit=10", "")
	if code != http.StatusOK || len(body["messages"].([]any)) != 1 || body["has_more"] != false {
		t.Fatalf("history: %d %v", code, body)
	}
	code, body = c.do("ann", "GET", "/v1/messages:search?query="+url.QueryEscape("UBER rest")+"&channel_id="+id, "")
	if code != http.StatusOK || len(body["messages"].([]any)) != 1 {
		t.Fatalf("search: %d %v", code, body)
	}
	code, body = c.do("ann", "GET", "/v1/channels", "")
	if code != http.StatusOK {
		t.Fatalf("list: %d %v", code, body)
	}
	if j := body["channels"].([]any)[0].(map[string]any); j["unread_count"] != "1" || j["last_message"].(map[string]any)["content"] != "über REST" {
		t.Fatalf("joined channel JSON %v", j)
	}

	// Errors map the grpc-gateway way.
	tests := []struct {
		name, user, method, path, body string
		want                           int
	}{
		{"no token", "", "GET", "/v1/channels/" + id, "", http.StatusUnauthorized},
		{"not a member", "eve", "GET", "/v1/channels/" + id + "/messages", "", http.StatusForbidden},
		{"unknown channel", "ann", "GET", "/v1/channels/c-none", "", http.StatusNotFound},
		{"blank message", "ann", "POST", "/v1/channels/" + id + "/messages", `{"content":"   "}`, http.StatusBadRequest},
		{"unknown field", "ann", "POST", "/v1/channels/" + id + "/messages", `{"content":"x","sneaky":{"$gt":""}}`, http.StatusBadRequest},
		{"both bounds", "ann", "GET", "/v1/channels/" + id + "/messages?after_seq=1&before_seq=3", "", http.StatusBadRequest},
	}
	for _, tc := range tests {
		if code, body := c.do(tc.user, tc.method, tc.path, tc.body); code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, code, body, tc.want)
		}
	}

	// Leaving through DELETE .../members/me.
	if code, body := c.do("ben", "DELETE", "/v1/channels/"+id+"/members/me", ""); code != http.StatusOK {
		t.Fatalf("leave: %d %v", code, body)
	}
	if code, _ := c.do("ben", "GET", "/v1/channels/"+id+"/messages", ""); code != http.StatusForbidden {
		t.Fatalf("after leaving: %d", code)
	}
}
