package apidocs_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parleyhq/parley/gateway/internal/apidocs"
)

func TestHandler(t *testing.T) {
	doc := []byte(`{"swagger":"2.0","paths":{}}`)
	h := apidocs.Handler(doc)
	tests := []struct {
		path        string
		wantCode    int
		wantType    string
		wantContain string
	}{
		{apidocs.DocumentPath, 200, "application/json", `"swagger":"2.0"`},
		{"/openapi/", 200, "text/html", `src="viewer.js"`},
		{"/openapi/viewer.js", 200, "javascript", "textContent"},
		{"/openapi/viewer.css", 200, "text/css", "details"},
		{"/openapi", 301, "", ""},
		{"/openapi/missing.js", 404, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.wantCode)
			}
			if !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("CSP header %q must forbid inline script", res.Header.Get("Content-Security-Policy"))
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("missing nosniff")
			}
			if tc.wantType != "" && !strings.Contains(res.Header.Get("Content-Type"), tc.wantType) {
				t.Errorf("content type %q, want %q", res.Header.Get("Content-Type"), tc.wantType)
			}
			if !strings.Contains(string(body), tc.wantContain) {
				t.Errorf("body lacks %q", tc.wantContain)
			}
		})
	}
}

// TestPageHasNoInlineScript keeps the page compatible with the CSP.
func TestPageHasNoInlineScript(t *testing.T) {
	rec := httptest.NewRecorder()
	apidocs.Handler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi/", nil))
	page := rec.Body.String()
	if strings.Contains(page, "<script>") || strings.Contains(page, "onclick=") || strings.Contains(page, "onload=") {
		t.Errorf("page has inline script:\n%s", page)
	}
}
