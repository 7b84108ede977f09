package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// digestTemplates are parsed once per Service (NewService) rather than held
// in package variables: no globals, and a broken template fails at start-up.
type digestTemplates struct {
	html *htmltemplate.Template
	text *texttemplate.Template
}

func parseDigestTemplates() (digestTemplates, error) {
	h, err := htmltemplate.ParseFS(templateFS, "templates/digest.html.tmpl")
	if err != nil {
		return digestTemplates{}, fmt.Errorf("parse digest HTML template: %w", err)
	}
	t, err := texttemplate.ParseFS(templateFS, "templates/digest.txt.tmpl")
	if err != nil {
		return digestTemplates{}, fmt.Errorf("parse digest text template: %w", err)
	}
	return digestTemplates{html: h, text: t}, nil
}

// digestView is what the templates render.
type digestView struct {
	Count          int
	Items          []digestEntry
	AppURL         string
	PreferencesURL string
	UnsubscribeURL string
}

type digestEntry struct {
	Mention bool
	Channel string
	Sender  string
	Text    string
	Time    string
	Link    string
}

// RunDigests runs one pass of the email digest: every user with unread
// direct messages or mentions older than DigestDelay, offline for at least
// DigestDelay, and without a digest in the last DigestWindow, gets one
// email summarising them. It returns the number of digests queued.
//
// Rules: a user who turned the digest off, or who is connected now (they
// see their unread messages in the app), has their pending items dropped;
// items the user has read meanwhile (the chat service's read position) are
// left out. At most one digest per user per window holds across replicas:
// the window is claimed in the database before anything is queued, so a
// crash right after the claim skips that window's digest rather than
// sending two.
func (s *Service) RunDigests(ctx context.Context) (int, error) {
	now := s.clock()
	users, err := s.cfg.Store.DigestUsers(ctx, now.Add(-s.cfg.DigestDelay), s.cfg.DigestBatch)
	if err != nil {
		return 0, fmt.Errorf("digest users: %w", err)
	}
	sent := 0
	var errs []error
	for _, u := range users {
		if ctx.Err() != nil {
			break
		}
		ok, err := s.digestUser(ctx, u, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("digest for %s: %w", u, err))
			continue
		}
		if ok {
			sent++
		}
	}
	return sent, errors.Join(errs...)
}

func (s *Service) digestUser(ctx context.Context, userID string, now time.Time) (bool, error) {
	items, err := s.cfg.Store.DigestItems(ctx, userID, maxDigestItems)
	if err != nil {
		return false, err
	}
	if len(items) == 0 {
		return false, nil
	}
	p, err := s.Preferences(ctx, userID)
	if err != nil {
		return false, err
	}
	if !p.EmailDigest {
		return false, s.dropItems(ctx, userID, items)
	}
	pr, err := s.cfg.Presence.Presence(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("presence: %w", err)
	}
	if pr.Connected {
		return false, s.dropItems(ctx, userID, items)
	}
	if !pr.LastSeen.IsZero() && now.Sub(pr.LastSeen) < s.cfg.DigestDelay {
		return false, nil // just left: give them time to come back
	}
	unread, read, err := s.unread(ctx, userID, items, p, now)
	if err != nil {
		return false, err
	}
	if len(read) > 0 {
		if err := s.dropItems(ctx, userID, read); err != nil {
			return false, err
		}
	}
	if len(unread) == 0 {
		return false, nil
	}
	claimed, err := s.cfg.Store.ClaimDigest(ctx, userID, now, s.cfg.DigestWindow)
	if err != nil || !claimed {
		return false, err
	}
	addr, err := s.cfg.Users.Email(ctx, userID)
	if errors.Is(err, ErrNoEmail) || errors.Is(err, ErrNotFound) {
		s.log.WarnContext(ctx, "digest: user has no email address", slog.String("user_id", userID))
		return false, s.dropItems(ctx, userID, unread)
	}
	if err != nil {
		return false, fmt.Errorf("email address: %w", err)
	}
	content, err := s.renderDigest(userID, addr, unread)
	if err != nil {
		return false, err
	}
	n := Notification{
		ID:       deriveID("digest", userID, now.Format(time.RFC3339Nano)),
		UserID:   userID,
		Channel:  ChannelEmail,
		Kind:     KindDigest,
		Title:    content.Subject,
		Body:     truncateRunes(content.Text, maxHistoryBody),
		Priority: PriorityNormal,
		Status:   StatusQueued,
		Targets:  []string{EmailTarget},
	}
	if _, err := s.dispatch(ctx, n, &content, now); err != nil {
		return false, err
	}
	return true, s.dropItems(ctx, userID, unread)
}

// unread splits items into those still worth a digest and those to drop
// (read meanwhile, or muted since).
func (s *Service) unread(ctx context.Context, userID string, items []DigestItem, p Preferences, now time.Time) (keep, drop []DigestItem, err error) {
	lastRead := map[string]int64{}
	for _, it := range items {
		if p.Muted(it.ChannelID, now) {
			drop = append(drop, it)
			continue
		}
		if s.cfg.Reads != nil && it.Seq > 0 {
			seq, seen := lastRead[it.ChannelID]
			if !seen {
				if seq, err = s.cfg.Reads.LastReadSeq(ctx, it.ChannelID, userID); err != nil {
					return nil, nil, fmt.Errorf("read position in %s: %w", it.ChannelID, err)
				}
				lastRead[it.ChannelID] = seq
			}
			if it.Seq <= seq {
				drop = append(drop, it)
				continue
			}
		}
		keep = append(keep, it)
	}
	return keep, drop, nil
}

func (s *Service) dropItems(ctx context.Context, userID string, items []DigestItem) error {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return s.cfg.Store.DeleteDigestItems(ctx, userID, ids)
}

// renderDigest builds the digest email: HTML and text bodies, and the
// List-Unsubscribe headers (RFC 2369 and RFC 8058 one-click).
func (s *Service) renderDigest(userID, to string, items []DigestItem) (EmailContent, error) {
	tmpl := s.tmpl
	unsub := s.cfg.UnsubscribeURL + "?token=" + url.QueryEscape(s.UnsubscribeToken(userID))
	v := digestView{
		Count:          len(items),
		AppURL:         s.cfg.BaseURL + "/",
		PreferencesURL: s.cfg.BaseURL + "/settings/notifications",
		UnsubscribeURL: unsub,
	}
	for _, it := range items {
		v.Items = append(v.Items, digestEntry{
			Mention: it.Kind == KindMention,
			Channel: it.ChannelName,
			Sender:  it.SenderName,
			Text:    it.Text,
			Time:    it.CreatedAt.UTC().Format("Jan 2, 15:04 MST"),
			Link:    s.cfg.BaseURL + "/channels/" + url.PathEscape(it.ChannelID),
		})
	}
	var html, text bytes.Buffer
	if err := tmpl.html.Execute(&html, v); err != nil {
		return EmailContent{}, fmt.Errorf("render digest HTML: %w", err)
	}
	if err := tmpl.text.Execute(&text, v); err != nil {
		return EmailContent{}, fmt.Errorf("render digest text: %w", err)
	}
	subject := "You have 1 unread message on Parley"
	if len(items) > 1 {
		subject = fmt.Sprintf("You have %d unread messages on Parley", len(items))
	}
	lu := []string{unsub}
	if s.cfg.UnsubscribeMailto != "" {
		lu = append(lu, "mailto:"+strings.TrimPrefix(s.cfg.UnsubscribeMailto, "mailto:")+"?subject=unsubscribe")
	}
	return EmailContent{To: to, Subject: subject, Text: text.String(), HTML: html.String(), ListUnsubscribe: lu, OneClick: true}, nil
}

// UnsubscribeToken is the signed token of a user's one-click unsubscribe
// link: base64url(user id) "." base64url(HMAC-SHA256(secret, purpose|user)).
// It never expires, as RFC 8058 links in old emails must keep working, and
// only switches the digest off.
func (s *Service) UnsubscribeToken(userID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(userID)) + "." + base64.RawURLEncoding.EncodeToString(s.unsubscribeMAC(userID))
}

func (s *Service) unsubscribeMAC(userID string) []byte {
	m := hmac.New(sha256.New, s.cfg.UnsubscribeSecret)
	m.Write([]byte("parley-unsubscribe-digest\x00" + userID))
	return m.Sum(nil)[:18]
}

// Unsubscribe switches the email digest off for the user the token names.
func (s *Service) Unsubscribe(ctx context.Context, token string) (string, error) {
	uPart, macPart, ok := strings.Cut(token, ".")
	uid, err1 := base64.RawURLEncoding.DecodeString(uPart)
	mac, err2 := base64.RawURLEncoding.DecodeString(macPart)
	if !ok || err1 != nil || err2 != nil || len(uid) == 0 || !hmac.Equal(mac, s.unsubscribeMAC(string(uid))) {
		return "", ErrInvalidToken
	}
	if err := s.cfg.Store.SetEmailDigest(ctx, string(uid), false, s.clock()); err != nil {
		return "", fmt.Errorf("unsubscribe %s: %w", uid, err)
	}
	return string(uid), nil
}
