package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	return rec
}

func TestHandlerRoutes(t *testing.T) {
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantType           string
		wantBody           string // a substring
		wantCache          string
	}{
		{"index", "GET", "/", 200, "text/html; charset=utf-8", `<script type="module" src="/app.js">`, "no-cache"},
		{"index by name", "GET", "/index.html", 200, "text/html; charset=utf-8", `id="composer"`, "no-cache"},
		{"spa fallback", "GET", "/channels/abc123", 200, "text/html; charset=utf-8", `src="/app.js"`, "no-cache"},
		{"spa fallback nested", "GET", "/some/deep/link", 200, "text/html; charset=utf-8", `src="/app.js"`, "no-cache"},
		{"admin", "GET", "/admin", 200, "text/html; charset=utf-8", `src="/admin.js"`, "no-cache"},
		{"admin slash", "GET", "/admin/", 200, "text/html; charset=utf-8", `src="/admin.js"`, "no-cache"},
		{"admin deep", "GET", "/admin/nodes", 200, "text/html; charset=utf-8", `src="/admin.js"`, "no-cache"},
		{"app module", "GET", "/app.js", 200, "text/javascript; charset=utf-8", "import", "public, max-age=60, must-revalidate"},
		{"admin module", "GET", "/admin.js", 200, "text/javascript; charset=utf-8", "admin", "public, max-age=60, must-revalidate"},
		{"stylesheet", "GET", "/style.css", 200, "text/css; charset=utf-8", ":root", "public, max-age=60, must-revalidate"},
		{"icon", "GET", "/favicon.svg", 200, "image/svg+xml", "<svg", "public, max-age=60, must-revalidate"},
		{"head", "HEAD", "/", 200, "text/html; charset=utf-8", "", "no-cache"},
		{"missing asset is 404", "GET", "/missing.js", 404, "", "", ""},
		{"api path is never the page", "GET", "/v1/nothing", 404, "", "", ""},
		{"openapi path is never the page", "GET", "/openapi/x", 404, "", "", ""},
		{"post refused", "POST", "/", 405, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(t, tc.method, tc.path, nil)
			if rec.Code != tc.wantStatus {
				t.Fatalf("%s %s = %d, want %d", tc.method, tc.path, rec.Code, tc.wantStatus)
			}
			if got := rec.Header().Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("CSP = %q, want %q", got, ContentSecurityPolicy)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if got := rec.Header().Get("Referrer-Policy"); got != "no-referrer" {
				t.Errorf("Referrer-Policy = %q", got)
			}
			if tc.wantType != "" {
				if got := rec.Header().Get("Content-Type"); got != tc.wantType {
					t.Errorf("Content-Type = %q, want %q", got, tc.wantType)
				}
			}
			if tc.wantCache != "" {
				if got := rec.Header().Get("Cache-Control"); got != tc.wantCache {
					t.Errorf("Cache-Control = %q, want %q", got, tc.wantCache)
				}
			}
			if tc.wantBody != "" && !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("body lacks %q", tc.wantBody)
			}
		})
	}
}

func TestCSPForbidsInlineScript(t *testing.T) {
	for _, directive := range []string{"script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, directive) {
			t.Errorf("CSP lacks %q", directive)
		}
	}
	for _, loose := range []string{"unsafe-inline", "unsafe-eval", "*"} {
		if strings.Contains(ContentSecurityPolicy, loose) {
			t.Errorf("CSP allows %q", loose)
		}
	}
}

// TestNoInlineScriptOrStyle scans every embedded HTML file: scripts must be
// external modules and no element may carry an event handler or style
// attribute, since the CSP would block them (and they invite XSS).
func TestNoInlineScriptOrStyle(t *testing.T) {
	scriptTag := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	handlerAttr := regexp.MustCompile(`(?i)<[^>]+\son[a-z]+\s*=`)
	styleAttr := regexp.MustCompile(`(?i)<[^>]+\sstyle\s*=`)
	var pages int
	err := fs.WalkDir(Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".html") {
			return err
		}
		pages++
		b, err := fs.ReadFile(Files(), p)
		if err != nil {
			return err
		}
		html := string(b)
		scripts := scriptTag.FindAllStringSubmatch(html, -1)
		if len(scripts) == 0 {
			t.Errorf("%s: no script tag", p)
		}
		for _, m := range scripts {
			if strings.TrimSpace(m[2]) != "" {
				t.Errorf("%s: inline script %q", p, m[0])
			}
			if !strings.Contains(m[1], "src=") {
				t.Errorf("%s: script without src: %q", p, m[0])
			}
		}
		if strings.Contains(strings.ToLower(html), "<style") {
			t.Errorf("%s: inline <style> element", p)
		}
		if m := handlerAttr.FindString(html); m != "" {
			t.Errorf("%s: inline event handler in %q", p, m)
		}
		if m := styleAttr.FindString(html); m != "" {
			t.Errorf("%s: style attribute in %q", p, m)
		}
		if strings.Contains(strings.ToLower(html), "javascript:") {
			t.Errorf("%s: javascript: URL", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pages < 2 {
		t.Fatalf("scanned %d HTML pages, want the client and the admin page", pages)
	}
}

// TestScriptsRenderUserContentAsText guards the client's rule that user
// content enters the DOM only as text: no script may use the HTML-parsing
// sinks.
func TestScriptsRenderUserContentAsText(t *testing.T) {
	sinks := []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"}
	var scripts int
	err := fs.WalkDir(Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		scripts++
		b, err := fs.ReadFile(Files(), p)
		if err != nil {
			return err
		}
		for _, s := range sinks {
			if strings.Contains(string(b), s) {
				t.Errorf("%s uses %s", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scripts == 0 {
		t.Fatal("no scripts embedded")
	}
}

func TestConditionalGet(t *testing.T) {
	first := serve(t, "GET", "/app.js", nil)
	etag := first.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on /app.js")
	}
	again := serve(t, "GET", "/app.js", map[string]string{"If-None-Match": etag})
	if again.Code != http.StatusNotModified {
		t.Fatalf("conditional GET = %d, want 304", again.Code)
	}
}

// TestModuleImportsResolve checks that every module a script imports is
// embedded, so a renamed file cannot ship a client that fails to load.
func TestModuleImportsResolve(t *testing.T) {
	imp := regexp.MustCompile(`(?m)^import .* from '([^']+)';`)
	err := fs.WalkDir(Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := fs.ReadFile(Files(), p)
		if err != nil {
			return err
		}
		for _, m := range imp.FindAllStringSubmatch(string(b), -1) {
			if rec := serve(t, "GET", m[1], nil); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") {
				t.Errorf("%s imports %s: %d %s", p, m[1], rec.Code, rec.Header().Get("Content-Type"))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
