// Package providertest runs real servers that play the providers' side in
// tests: an HTTP server implementing the FCM v1 send contract (with its
// error responses), a Web Push service that checks VAPID and decrypts the
// RFC 8291 payload with the subscription's private key, and an SMTP server
// (github.com/emersion/go-smtp) with STARTTLS and AUTH PLAIN. It is only
// imported by tests.
package providertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// FCMReply is one scripted answer of the FCM server.
type FCMReply struct {
	// Status is the HTTP status (default 200).
	Status int
	// ErrorCode is the FcmError errorCode (UNREGISTERED, QUOTA_EXCEEDED,
	// INVALID_ARGUMENT, UNAVAILABLE, ...); empty sends no FcmError detail.
	ErrorCode string
	// RetryAfter is the Retry-After header.
	RetryAfter string
}

// FCMRequest is one send the server received.
type FCMRequest struct {
	Project string
	// Auth is the Authorization header.
	Auth string
	// Message is the "message" object as JSON decoded into maps.
	Message map[string]any
}

// Token returns message.token.
func (r FCMRequest) Token() string { s, _ := r.Message["token"].(string); return s }

// Field returns the string at a dotted path of the message
// ("notification.title", "android.priority", "apns.headers.apns-priority").
func (r FCMRequest) Field(path string) string {
	var cur any = r.Message
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

// FCMServer plays https://fcm.googleapis.com/v1/projects/{project}/messages:send.
type FCMServer struct {
	*httptest.Server
	Project string

	mu       sync.Mutex
	script   map[string][]FCMReply // by token, consumed in order
	requests []FCMRequest
	next     int
}

// NewFCMServer starts a server for project; it is closed when the test ends.
func NewFCMServer(t testing.TB, project string) *FCMServer {
	f := &FCMServer{Project: project, script: map[string][]FCMReply{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// Script queues replies for a token; once they are used up the token gets
// 200.
func (f *FCMServer) Script(token string, replies ...FCMReply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[token] = append(f.script[token], replies...)
}

// Requests returns the sends received so far.
func (f *FCMServer) Requests() []FCMRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FCMRequest(nil), f.requests...)
}

// RequestsFor returns the sends received for a token.
func (f *FCMServer) RequestsFor(token string) []FCMRequest {
	var out []FCMRequest
	for _, r := range f.Requests() {
		if r.Token() == token {
			out = append(out, r)
		}
	}
	return out
}

func (f *FCMServer) serve(w http.ResponseWriter, r *http.Request) {
	const prefix, suffix = "/v1/projects/", "/messages:send"
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, prefix) || !strings.HasSuffix(r.URL.Path, suffix) {
		writeFCMError(w, http.StatusNotFound, "NOT_FOUND", "", "no such method "+r.Method+" "+r.URL.Path)
		return
	}
	project := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, prefix), suffix)
	if project != f.Project {
		writeFCMError(w, http.StatusForbidden, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "wrong project "+project)
		return
	}
	var req struct {
		Message map[string]any `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Message == nil {
		writeFCMError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "invalid JSON payload")
		return
	}
	rec := FCMRequest{Project: project, Auth: r.Header.Get("Authorization"), Message: req.Message}
	f.mu.Lock()
	f.requests = append(f.requests, rec)
	reply := FCMReply{Status: http.StatusOK}
	if q := f.script[rec.Token()]; len(q) > 0 {
		reply, f.script[rec.Token()] = q[0], q[1:]
	}
	f.next++
	id := f.next
	f.mu.Unlock()

	if reply.Status == 0 {
		reply.Status = http.StatusOK
	}
	if reply.RetryAfter != "" {
		w.Header().Set("Retry-After", reply.RetryAfter)
	}
	if rec.Token() == "" {
		writeFCMError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "message.token is required")
		return
	}
	if reply.Status == http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"name": fmt.Sprintf("projects/%s/messages/%d", project, id)})
		return
	}
	writeFCMError(w, reply.Status, statusName(reply.Status), reply.ErrorCode, "scripted failure")
}

func statusName(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	default:
		return "INTERNAL"
	}
}

// writeFCMError writes Google's JSON error body as FCM v1 does.
func writeFCMError(w http.ResponseWriter, code int, status, fcmCode, msg string) {
	body := map[string]any{"code": code, "message": msg, "status": status}
	if fcmCode != "" {
		body["details"] = []any{map[string]any{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcmCode}}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": body})
}
