// Package apidocs serves Parley's merged OpenAPI document and a small,
// dependency-free page for browsing it. The page is our own (not Swagger UI)
// because the gateway must work offline and under a strict
// Content-Security-Policy: no CDN, no inline script.
package apidocs

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"time"
)

//go:embed static
var static embed.FS

// DocumentPath is where the merged OpenAPI v2 document is served.
const DocumentPath = "/openapi/parley.swagger.json"

// contentSecurityPolicy forbids inline script and any third-party origin.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Handler serves the document at DocumentPath and the browsing page under
// /openapi/. doc is the merged OpenAPI document (apis.OpenAPIDocument()).
func Handler(doc []byte) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// The embedded tree is fixed at build time; fs.Sub only fails on a bad
		// path literal, which the tests catch.
		return http.NotFoundHandler()
	}
	files := http.StripPrefix("/openapi/", http.FileServerFS(sub))
	modTime := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DocumentPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		http.ServeContent(w, r, "parley.swagger.json", modTime, bytes.NewReader(doc))
	})
	mux.HandleFunc("GET /openapi", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/openapi/", http.StatusMovedPermanently)
	})
	mux.Handle("GET /openapi/", files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r)
	})
}
