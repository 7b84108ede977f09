package notificationservice

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
)

// unsubscriber is the domain call behind the endpoint.
type unsubscriber interface {
	Unsubscribe(ctx context.Context, token string) (string, error)
}

// unsubscribePage is static apart from the token, which html/template
// escapes.
const unsubscribePage = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Parley email digest</title></head>
<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:480px;margin:48px auto;padding:0 16px;">
{{if .Done}}<h1 style="font-size:20px;">You are unsubscribed</h1>
<p>Parley will not email you digests any more. You can switch them on again in your notification settings.</p>
{{else}}<h1 style="font-size:20px;">Stop the email digest?</h1>
<p>Parley emails you a digest of the direct messages and mentions you missed while away.</p>
<form method="post" action="?token={{.Token}}"><button type="submit" style="padding:10px 16px;">Unsubscribe</button></form>
{{end}}</body></html>`

// unsubscribeHandler serves the one-click unsubscribe link of digest
// emails. POST (RFC 8058: the mail client sends
// "List-Unsubscribe=One-Click") switches the digest off; GET only shows a
// confirmation form, because mail scanners fetch links in emails and must
// not unsubscribe anyone.
func unsubscribeHandler(svc unsubscriber, log *slog.Logger) (http.Handler, error) {
	page, err := template.New("unsubscribe").Parse(unsubscribePage)
	if err != nil {
		return nil, fmt.Errorf("notificationservice: unsubscribe page: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := r.URL.Query().Get("token")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			render(w, log, page, http.StatusOK, map[string]any{"Token": token})
		case http.MethodPost:
			r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
			_, err := svc.Unsubscribe(r.Context(), token)
			switch {
			case errors.Is(err, notify.ErrInvalidToken):
				http.Error(w, "invalid or expired unsubscribe link", http.StatusBadRequest)
			case err != nil:
				log.ErrorContext(r.Context(), "unsubscribe", slog.Any("error", err))
				http.Error(w, "could not unsubscribe, please try again", http.StatusInternalServerError)
			default:
				render(w, log, page, http.StatusOK, map[string]any{"Done": true})
			}
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	}), nil
}

func render(w http.ResponseWriter, log *slog.Logger, page *template.Template, code int, data any) {
	w.WriteHeader(code)
	if err := page.Execute(w, data); err != nil {
		log.Debug("write unsubscribe page", slog.Any("error", err))
	}
}
