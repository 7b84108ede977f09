package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

// pngBytes is a small real PNG (sniffed as image/png by the chat service).
func pngBytes(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for x := range 8 {
		img.Set(x, x, color.RGBA{R: 200, A: 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func upload(t *testing.T, url, token, filename, contentType string, data []byte) (int, []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	hdr := make(map[string][]string)
	hdr["Content-Disposition"] = []string{`form-data; name="file"; filename="` + filename + `"`}
	hdr["Content-Type"] = []string{contentType}
	part, err := mw.CreatePart(hdr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAttachmentsOverREST uploads an image to a group channel, attaches it
// to a message, downloads it as a member and is refused as an outsider.
func TestAttachmentsOverREST(t *testing.T) {
	s := startServer(t, t.TempDir())
	alice, bob, eve := registerUser(t, s.URL, "alice"), registerUser(t, s.URL, "bob"), registerUser(t, s.URL, "eve")
	var created struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if code, body := call(t, "POST", s.URL+"/v1/channels", alice.AccessToken, map[string]any{
		"name": "pics", "type": "group", "member_ids": []string{bob.User.ID},
	}, &created); code != http.StatusOK {
		t.Fatalf("create channel: %d %s", code, body)
	}
	ch := created.Channel.ID
	img := pngBytes(t)

	code, body := upload(t, s.URL+"/v1/channels/"+ch+"/attachments", alice.AccessToken, "dot.png", "image/png", img)
	if code != http.StatusOK {
		t.Fatalf("upload: %d %s", code, body)
	}
	var up struct {
		Attachment struct {
			ID          string `json:"id"`
			URL         string `json:"url"`
			ContentType string `json:"content_type"`
		} `json:"attachment"`
	}
	if err := json.Unmarshal(body, &up); err != nil || up.Attachment.ID == "" || up.Attachment.ContentType != "image/png" {
		t.Fatalf("upload response %s (err %v)", body, err)
	}
	if code, body := call(t, "POST", s.URL+"/v1/channels/"+ch+"/messages", alice.AccessToken, map[string]any{
		"content": "a red line", "type": "image", "attachment_id": up.Attachment.ID,
	}, nil); code != http.StatusOK {
		t.Fatalf("send with attachment: %d %s", code, body)
	}

	// An HTML file pretending to be an image is refused (sniffed type).
	if code, body := upload(t, s.URL+"/v1/channels/"+ch+"/attachments", alice.AccessToken, "x.png", "image/png",
		[]byte("<html><script>alert(1)</script></html>")); code != http.StatusBadRequest {
		t.Errorf("html upload: %d %s, want 400", code, body)
	}
	// Outsiders can neither upload nor download.
	if code, _ := upload(t, s.URL+"/v1/channels/"+ch+"/attachments", eve.AccessToken, "dot.png", "image/png", img); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Errorf("outsider upload: %d, want 403 or 404", code)
	}

	download := func(token string) (*http.Response, []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+up.Attachment.URL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, got := download(bob.AccessToken)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, img) {
		t.Fatalf("bob downloads: %d, %d bytes (want %d identical)", resp.StatusCode, len(got), len(img))
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(resp.Header.Get("Content-Disposition"), "dot.png") ||
		resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("download headers: %v", resp.Header)
	}
	if resp, _ := download(eve.AccessToken); resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
		t.Errorf("eve downloads: %d, want 403 or 404", resp.StatusCode)
	}
}
