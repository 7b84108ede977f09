package chatservice

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
)

// pngBytes returns a valid PNG of about the given size (noise compresses
// badly, so the pixel count sets the size).
func pngBytes(t testing.TB, approx int) []byte {
	t.Helper()
	side := int(math.Sqrt(float64(approx) / 4)) // 4 random bytes per pixel
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	img.Set(0, 0, color.RGBA{1, 2, 3, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// upload streams data in 64 KiB chunks; declared overrides the size sent
// in the info when non-zero.
func (f *fixture) upload(ctx context.Context, channelID, filename string, data []byte, declared int64) (*chatv1.Attachment, error) {
	stream, err := f.client.UploadAttachment(ctx)
	if err != nil {
		return nil, err
	}
	if declared == 0 {
		declared = int64(len(data))
	}
	if err := stream.Send(&chatv1.UploadAttachmentRequest{Payload: &chatv1.UploadAttachmentRequest_Info{Info: &chatv1.UploadAttachmentInfo{
		ChannelId: channelID, Filename: filename, ContentType: "application/octet-stream", Size: declared,
	}}}); err != nil {
		return nil, err
	}
	for off := 0; off < len(data); off += 64 << 10 {
		end := min(off+64<<10, len(data))
		if err := stream.Send(&chatv1.UploadAttachmentRequest{Payload: &chatv1.UploadAttachmentRequest_Chunk{Chunk: data[off:end]}}); err != nil {
			if errors.Is(err, io.EOF) {
				break // the server answered early; CloseAndRecv has its reason
			}
			return nil, err
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return resp.GetAttachment(), nil
}

// download reads an attachment back.
func (f *fixture) download(ctx context.Context, id string) (*chatv1.Attachment, []byte, error) {
	stream, err := f.client.DownloadAttachment(ctx, &chatv1.DownloadAttachmentRequest{AttachmentId: id})
	if err != nil {
		return nil, nil, err
	}
	var (
		meta *chatv1.Attachment
		data []byte
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return meta, data, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if a := resp.GetAttachment(); a != nil {
			meta = a
		}
		if c := resp.GetChunk(); len(c) > 64<<10 {
			return nil, nil, errors.New("chunk over 64 KiB")
		}
		data = append(data, resp.GetChunk()...)
	}
}

func (f *fixture) countFiles(t testing.TB) (files, chunks int64) {
	t.Helper()
	var err error
	if files, err = f.db.Collection("attachments.files").CountDocuments(t.Context(), bson.D{}); err != nil {
		t.Fatal(err)
	}
	if chunks, err = f.db.Collection("attachments.chunks").CountDocuments(t.Context(), bson.D{}); err != nil {
		t.Fatal(err)
	}
	return files, chunks
}

func TestAttachments(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxAttachmentSize = 1 << 20 })
	ch := f.mustCreate(t, "ann", "group", "files", "ben")
	other := f.mustCreate(t, "ann", "group", "elsewhere")
	img := pngBytes(t, 600<<10)
	if len(img) < 300<<10 || len(img) > 1<<20 {
		t.Fatalf("test image of %d bytes", len(img))
	}

	a, err := f.upload(as(t, "ann"), ch.GetId(), "holiday.png", img, 0)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if a.GetContentType() != "image/png" || a.GetSize() != int64(len(img)) || a.GetFilename() != "holiday.png" ||
		a.GetUrl() != "/v1/attachments/"+a.GetId() || a.GetUploaderId() != "ann" || a.GetChannelId() != ch.GetId() {
		t.Fatalf("attachment %v", a)
	}
	meta, data, err := f.download(as(t, "ben"), a.GetId())
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	if !bytes.Equal(data, img) || meta.GetId() != a.GetId() || meta.GetSize() != a.GetSize() {
		t.Fatalf("downloaded %d bytes (meta %v), uploaded %d", len(data), meta, len(img))
	}
	info, err := f.client.GetAttachment(as(t, "ben"), &chatv1.GetAttachmentRequest{AttachmentId: a.GetId()})
	if err != nil || info.GetAttachment().GetContentType() != "image/png" {
		t.Fatalf("GetAttachment: %v %v", info, err)
	}

	// Sent with a message; the type follows the content.
	sent, err := f.client.SendMessage(as(t, "ann"), &chatv1.SendMessageRequest{ChannelId: ch.GetId(), AttachmentId: a.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if m := sent.GetMessage(); m.GetType() != "image" || m.GetAttachment().GetId() != a.GetId() || m.GetContent() != "" {
		t.Fatalf("message with attachment: %v", m)
	}
	_, err = f.client.SendMessage(as(t, "ann"), &chatv1.SendMessageRequest{ChannelId: other.GetId(), AttachmentId: a.GetId()})
	wantCode(t, err, codes.InvalidArgument, "an attachment of another channel")
	_, err = f.client.SendMessage(as(t, "ben"), &chatv1.SendMessageRequest{ChannelId: ch.GetId(), AttachmentId: a.GetId()})
	wantCode(t, err, codes.InvalidArgument, "someone else's attachment")

	// Non-members neither upload nor download.
	_, err = f.upload(as(t, "eve"), ch.GetId(), "x.png", img[:1000], 0)
	wantCode(t, err, codes.PermissionDenied, "upload by a non-member")
	_, _, err = f.download(as(t, "eve"), a.GetId())
	wantCode(t, err, codes.PermissionDenied, "download by a non-member")
	_, err = f.client.GetAttachment(as(t, "eve"), &chatv1.GetAttachmentRequest{AttachmentId: a.GetId()})
	wantCode(t, err, codes.PermissionDenied, "metadata for a non-member")
	_, _, err = f.download(as(t, "ann"), "a-missing")
	wantCode(t, err, codes.NotFound, "download a missing attachment")

	filesBefore, chunksBefore := f.countFiles(t)
	big := pngBytes(t, 1500<<10)
	tests := []struct {
		name     string
		filename string
		data     []byte
		declared int64
		want     codes.Code
	}{
		// The declared size is checked against the limit up front, and
		// the stream is cut off as soon as it passes the declared size:
		// never more than the limit is stored, and what was written of
		// the file (chunks of 255 KiB) is removed.
		{"declared over the limit", "big.png", big, int64(len(big)), codes.ResourceExhausted},
		{"streamed past the declared size", "big.png", big, 600 << 10, codes.InvalidArgument},
		{"fewer bytes than declared, after whole chunks", "short.png", img, int64(len(img)) + 1, codes.InvalidArgument},
		{"HTML is not allowed", "page.png", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>"), 0, codes.InvalidArgument},
		{"SVG is not allowed", "logo.svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>`), 0, codes.InvalidArgument},
		{"fewer bytes than declared", "short.png", img[:5000], 6000, codes.InvalidArgument},
		{"more bytes than declared", "long.png", img[:200000], 100000, codes.InvalidArgument},
		{"a path as the file name", "../etc/passwd", []byte("text"), 0, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.upload(as(t, "ann"), ch.GetId(), tc.filename, tc.data, tc.declared)
			wantCode(t, err, tc.want, tc.name)
		})
	}
	if files, chunks := f.countFiles(t); files != filesBefore || chunks != chunksBefore {
		t.Fatalf("failed uploads left %d files and %d chunks (before: %d, %d)", files, chunks, filesBefore, chunksBefore)
	}

	// Plain text is fine, and stored with the sniffed type.
	txt, err := f.upload(as(t, "ben"), ch.GetId(), "notes.txt", []byte("just some notes\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if txt.GetContentType() != "text/plain; charset=utf-8" {
		t.Fatalf("text stored as %q", txt.GetContentType())
	}

	// Deleting the message removes the file.
	if _, err := f.client.DeleteMessage(as(t, "ann"), &chatv1.DeleteMessageRequest{ChannelId: ch.GetId(), MessageId: sent.GetMessage().GetId()}); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.download(as(t, "ann"), a.GetId())
	wantCode(t, err, codes.NotFound, "download after the message was deleted")
}
