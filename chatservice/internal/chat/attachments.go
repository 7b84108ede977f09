package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"
)

// sniffLen is what http.DetectContentType looks at.
const sniffLen = 512

// UploadInfo describes a file about to be uploaded.
type UploadInfo struct {
	ChannelID string
	Filename  string
	// ContentType is what the client declared; the stored type is sniffed
	// from the content instead, since the declared one is not to be trusted.
	ContentType string
	// Size is the exact number of bytes that will follow.
	Size int64
}

// UploadAttachment stores a file for a later SendMessage in a channel the
// caller is a member of. The content type is sniffed from the first 512
// bytes and must be on the allowlist; the size limit is enforced while the
// body streams in, and a file that breaks it (or differs from the declared
// size) is removed again.
func (s *Service) UploadAttachment(ctx context.Context, c Caller, info UploadInfo, body io.Reader) (Attachment, error) {
	name := strings.TrimSpace(info.Filename)
	switch {
	case name == "" || utf8.RuneCountInString(name) > 255 || !utf8.ValidString(name) ||
		strings.ContainsAny(name, `/\`) || hasControl(name, false):
		return Attachment{}, fmt.Errorf("%w: filename must be 1-255 characters without slashes or control characters", ErrInvalidArgument)
	case info.Size <= 0:
		return Attachment{}, fmt.Errorf("%w: size must be positive", ErrInvalidArgument)
	case info.Size > s.maxAttach:
		return Attachment{}, fmt.Errorf("%w: %d bytes declared, the limit is %d", ErrTooLarge, info.Size, s.maxAttach)
	}
	ch, _, err := s.requireMember(ctx, c, info.ChannelID)
	if err != nil {
		return Attachment{}, err
	}
	guard := &sizeGuard{r: body, declared: info.Size, max: s.maxAttach}
	head := make([]byte, sniffLen)
	n, err := io.ReadFull(guard, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return Attachment{}, err
	}
	head = head[:n]
	sniffed := http.DetectContentType(head)
	if !s.allowed[mediaType(sniffed)] {
		return Attachment{}, fmt.Errorf("%w: %s (detected from the content)", ErrUnsupportedMedia, mediaType(sniffed))
	}
	a := Attachment{
		ID: newID("a"), ChannelID: ch.ID, UploaderID: c.UserID, Filename: name,
		ContentType: sniffed, Size: info.Size, CreatedAt: s.clock.Now(),
	}
	stored, err := s.attachments.SaveAttachment(ctx, a, io.MultiReader(bytes.NewReader(head), guard))
	if err != nil {
		return Attachment{}, fmt.Errorf("store attachment: %w", err)
	}
	return stored, nil
}

// mediaType strips parameters: "text/plain; charset=utf-8" -> "text/plain".
func mediaType(ct string) string {
	t, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

// sizeGuard counts the bytes of an upload: more than max is ErrTooLarge as
// soon as it happens (the rest is never read), and a total that differs
// from the declared size is an ErrInvalidArgument instead of io.EOF.
type sizeGuard struct {
	r        io.Reader
	n        int64
	declared int64
	max      int64
}

func (g *sizeGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	g.n += int64(n)
	switch {
	case g.n > g.max:
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, g.max)
	case g.n > g.declared:
		return 0, fmt.Errorf("%w: more than the %d bytes declared", ErrInvalidArgument, g.declared)
	case errors.Is(err, io.EOF) && g.n != g.declared:
		return n, fmt.Errorf("%w: received %d bytes, %d declared", ErrInvalidArgument, g.n, g.declared)
	}
	return n, err
}

// GetAttachment returns the metadata of an attachment in a channel the
// caller may read.
func (s *Service) GetAttachment(ctx context.Context, c Caller, id string) (Attachment, error) {
	if err := checkID("attachment_id", id); err != nil {
		return Attachment{}, err
	}
	a, err := s.attachments.GetAttachment(ctx, id)
	if err != nil {
		return Attachment{}, fmt.Errorf("attachment %s: %w", id, err)
	}
	if _, _, err := s.requireReader(ctx, c, a.ChannelID); err != nil {
		return Attachment{}, err
	}
	return a, nil
}

// OpenAttachment returns an attachment's metadata and content, for the
// same callers as GetAttachment. The caller closes the reader.
func (s *Service) OpenAttachment(ctx context.Context, c Caller, id string) (Attachment, io.ReadCloser, error) {
	a, err := s.GetAttachment(ctx, c, id)
	if err != nil {
		return Attachment{}, nil, err
	}
	rc, err := s.attachments.OpenAttachment(ctx, id)
	if err != nil {
		return Attachment{}, nil, fmt.Errorf("open attachment %s: %w", id, err)
	}
	return a, rc, nil
}

// deleteAttachmentFile removes the file of a deleted message, best effort:
// the message no longer points at it either way.
func (s *Service) deleteAttachmentFile(ctx context.Context, id string) {
	ctx, cancel := detached(ctx)
	defer cancel()
	if err := s.attachments.DeleteAttachment(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		s.log.WarnContext(ctx, "delete attachment of a deleted message", slog.String("attachment_id", id), slog.Any("error", err))
	}
}
