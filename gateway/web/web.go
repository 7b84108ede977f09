// Package web serves Parley's browser client and admin dashboard: plain ES
// modules, HTML and CSS embedded in the binary with embed.FS, so running the
// platform needs no Node toolchain and no bundler output to keep fresh.
//
// Every response carries a strict Content-Security-Policy (no inline script
// or style, connections only to this origin), so even if user content ever
// slipped into the DOM as markup it could not run. The client itself renders
// user content as text only.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var staticFiles embed.FS

// ContentSecurityPolicy is sent with every response of the web handler.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; " +
	"base-uri 'none'; form-action 'self'"

const (
	indexPage = "index.html"
	adminPage = "admin.html"
)

// reservedPrefixes are paths owned by other handlers of the gateway; the SPA
// fallback must never answer them with the client's page, or an API typo
// would look like a 200 HTML response.
var reservedPrefixes = [...]string{"/v1/", "/openapi", "/.well-known/", "/healthz", "/readyz", "/metrics"}

// asset is one embedded file, prepared once: its bytes, type and ETag.
type asset struct {
	name        string
	body        []byte
	contentType string
	etag        string
}

// Files returns the embedded static files (for tests and tooling).
func Files() fs.FS {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		// fs.Sub fails only on an invalid path; "static" is a constant.
		return staticFiles
	}
	return sub
}

// Handler serves the web client at "/" (with an SPA fallback: any unknown
// GET path without a file extension serves index.html, so deep links such
// as /channels/<id> work after a reload) and the admin dashboard at
// "/admin". Mount it as the gateway's catch-all "/" route.
func Handler() http.Handler {
	assets := make(map[string]*asset)
	files := Files()
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		// The platform's mime table may be missing or wrong for these; a
		// module script served as text/plain is refused by browsers.
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		assets["/"+p] = &asset{name: p, body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return &handler{assets: assets}
}

type handler struct {
	assets map[string]*asset
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	for _, prefix := range reservedPrefixes {
		if strings.HasPrefix(p, prefix) {
			http.NotFound(w, r)
			return
		}
	}
	var a *asset
	switch {
	case p == "/" || p == "/index.html":
		a = h.assets["/"+indexPage]
	case p == "/admin" || p == "/admin/" || p == "/admin.html":
		a = h.assets["/"+adminPage]
	case h.assets[p] != nil:
		a = h.assets[p]
	case path.Ext(p) != "":
		// A missing script or image must be a 404, not the HTML page: the
		// browser would otherwise report a confusing MIME type error.
		http.NotFound(w, r)
		return
	case strings.HasPrefix(p, "/admin/"):
		a = h.assets["/"+adminPage]
	default:
		a = h.assets["/"+indexPage]
	}
	if a == nil {
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(a.name, ".html") {
		// Pages must always be revalidated so a deploy reaches users at once.
		hdr.Set("Cache-Control", "no-cache")
	} else {
		// Assets are not content-hashed in their names, so they are cached
		// briefly and revalidated by ETag.
		hdr.Set("Cache-Control", "public, max-age=60, must-revalidate")
	}
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("ETag", a.etag)
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}
