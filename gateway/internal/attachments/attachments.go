// Package attachments is the gateway's REST face of chat attachments: a
// streamed upload (POST /v1/channels/{channel_id}/attachments) and download
// (GET /v1/attachments/{attachment_id}). grpc-gateway cannot map gRPC
// client/server streams of raw bytes to plain HTTP bodies, so these two
// handlers call the chat service's streaming RPCs themselves, forwarding
// the caller's bearer token so the service authorises as for any call.
package attachments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
)

// chunkSize is the largest chunk the chat service accepts per message.
const chunkSize = 64 << 10

// Config configures the handlers.
type Config struct {
	// Chat is the chat service client. Required.
	Chat chatv1.ChatServiceClient
	// MaxBytes is the largest upload accepted (default 25 MB, the chat
	// service's own default limit, which it enforces again).
	MaxBytes int64
	// REST serves the paths these patterns also match but do not own
	// (GET /v1/attachments/{id}:info is a grpc-gateway route).
	REST   http.Handler
	Logger *slog.Logger
}

// Handlers serves the upload and download endpoints.
type Handlers struct {
	cfg Config
}

// New returns the handlers.
func New(cfg Config) *Handlers {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 25 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handlers{cfg: cfg}
}

// Register mounts the endpoints on mux (Go 1.22 patterns).
func (h *Handlers) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/channels/{channel_id}/attachments", h.upload)
	mux.HandleFunc("GET /v1/attachments/{attachment_id}", h.download)
}

// outgoing forwards the caller's credentials and request id to the service.
func outgoing(r *http.Request) context.Context {
	ctx := r.Context()
	if a := r.Header.Get("Authorization"); a != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", a)
	}
	if id := r.Header.Get("X-Request-Id"); id != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", id)
	}
	return ctx
}

// upload accepts either multipart/form-data with a "file" field, or the raw
// file as the body with its Content-Type and ?filename=. The chat service
// needs the exact size up front; a raw body with a Content-Length streams
// straight through, anything else is spooled to a temporary file first.
func (h *Handlers) upload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBytes+1<<20) // room for multipart framing
	var (
		body        io.Reader
		size        int64
		filename    = r.URL.Query().Get("filename")
		contentType = r.Header.Get("Content-Type")
	)
	mediaType, params, _ := mime.ParseMediaType(contentType)
	switch {
	case mediaType == "multipart/form-data":
		part, err := filePart(multipart.NewReader(r.Body, params["boundary"]))
		if err != nil {
			writeError(w, http.StatusBadRequest, codes.InvalidArgument, err.Error())
			return
		}
		defer part.Close()
		if filename == "" {
			filename = part.FileName()
		}
		contentType = part.Header.Get("Content-Type")
		f, n, err := spool(part, h.cfg.MaxBytes)
		if err != nil {
			h.spoolError(w, err)
			return
		}
		defer cleanup(f)
		body, size = f, n
	case r.ContentLength > 0:
		if r.ContentLength > h.cfg.MaxBytes {
			writeError(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted,
				fmt.Sprintf("attachment is larger than %d bytes", h.cfg.MaxBytes))
			return
		}
		body, size = r.Body, r.ContentLength
	default:
		f, n, err := spool(r.Body, h.cfg.MaxBytes)
		if err != nil {
			h.spoolError(w, err)
			return
		}
		defer cleanup(f)
		body, size = f, n
	}
	filename = path.Base(strings.ReplaceAll(filename, "\\", "/"))
	if filename == "" || filename == "." || filename == "/" {
		filename = "attachment"
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	if size == 0 {
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, "the file is empty")
		return
	}

	stream, err := h.cfg.Chat.UploadAttachment(outgoing(r))
	if err != nil {
		writeStatus(w, err)
		return
	}
	err = stream.Send(&chatv1.UploadAttachmentRequest{Payload: &chatv1.UploadAttachmentRequest_Info{
		Info: &chatv1.UploadAttachmentInfo{
			ChannelId: r.PathValue("channel_id"), Filename: filename, ContentType: contentType, Size: size,
		},
	}})
	buf := make([]byte, chunkSize)
	for err == nil {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			err = stream.Send(&chatv1.UploadAttachmentRequest{Payload: &chatv1.UploadAttachmentRequest_Chunk{Chunk: buf[:n]}})
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil && err == nil {
			_ = stream.CloseSend()
			var tooBig *http.MaxBytesError
			if errors.As(rerr, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, "attachment is too large")
			} else {
				writeError(w, http.StatusBadRequest, codes.InvalidArgument, "reading the upload: "+rerr.Error())
			}
			return
		}
	}
	// A Send error means the server ended the call; its status comes from
	// CloseAndRecv.
	resp, err := stream.CloseAndRecv()
	if err != nil {
		writeStatus(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// filePart returns the multipart part named "file".
func filePart(mr *multipart.Reader) (*multipart.Part, error) {
	for {
		p, err := mr.NextPart()
		if err != nil {
			return nil, errors.New(`multipart body has no "file" field`)
		}
		if p.FormName() == "file" {
			return p, nil
		}
		_ = p.Close()
	}
}

var errTooLarge = errors.New("attachment is too large")

// spool copies at most max bytes of r into a temporary file, rewound.
func spool(r io.Reader, max int64) (*os.File, int64, error) {
	f, err := os.CreateTemp("", "parley-upload-*")
	if err != nil {
		return nil, 0, err
	}
	n, err := io.Copy(f, io.LimitReader(r, max+1))
	if err == nil && n > max {
		err = errTooLarge
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		err = errTooLarge
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		cleanup(f)
		return nil, 0, err
	}
	return f, n, nil
}

func (h *Handlers) spoolError(w http.ResponseWriter, err error) {
	if errors.Is(err, errTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted,
			fmt.Sprintf("attachment is larger than %d bytes", h.cfg.MaxBytes))
		return
	}
	h.cfg.Logger.Warn("spooling an upload failed", "err", err)
	writeError(w, http.StatusBadRequest, codes.InvalidArgument, "reading the upload failed")
}

func cleanup(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}

// download streams an attachment to a member of its channel. Images the
// browser can render safely are served inline; everything else as a
// download. nosniff stops a browser from reinterpreting the bytes.
func (h *Handlers) download(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.PathValue("attachment_id"), ":") && h.cfg.REST != nil {
		h.cfg.REST.ServeHTTP(w, r)
		return
	}
	ctx, cancel := context.WithCancel(outgoing(r))
	defer cancel()
	stream, err := h.cfg.Chat.DownloadAttachment(ctx, &chatv1.DownloadAttachmentRequest{AttachmentId: r.PathValue("attachment_id")})
	if err != nil {
		writeStatus(w, err)
		return
	}
	first, err := stream.Recv()
	if err != nil {
		writeStatus(w, err)
		return
	}
	att := first.GetAttachment()
	if att == nil {
		writeError(w, http.StatusBadGateway, codes.Internal, "chat service sent no attachment metadata")
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", att.GetContentType())
	hdr.Set("Content-Length", strconv.FormatInt(att.GetSize(), 10))
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hdr.Set("Cache-Control", "private, max-age=3600")
	disposition := "attachment"
	if inlineSafe(att.GetContentType()) {
		disposition = "inline"
	}
	hdr.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": att.GetFilename()}))
	w.WriteHeader(http.StatusOK)
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return
		}
		if err != nil {
			// Headers are sent: all we can do is cut the body short, which
			// the client sees as a truncated download.
			h.cfg.Logger.Warn("attachment download failed midway", "attachment_id", att.GetId(), "err", err)
			return
		}
		if _, err := w.Write(msg.GetChunk()); err != nil {
			return
		}
	}
}

// inlineSafe are the types a browser may display in the page: raster
// images only (SVG can carry script).
func inlineSafe(contentType string) bool {
	switch strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0])) {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return true
	}
	return false
}

func writeStatus(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	code := runtime.HTTPStatusFromCode(st.Code())
	if st.Code() == codes.ResourceExhausted {
		code = http.StatusRequestEntityTooLarge
	}
	writeError(w, code, st.Code(), st.Message())
}

// writeError writes the same JSON error shape as the rest of the REST API.
func writeError(w http.ResponseWriter, httpCode int, code codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	b, _ := protojson.Marshal(status.New(code, msg).Proto())
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, code int, resp *chatv1.UploadAttachmentResponse) {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(resp)
	if err != nil {
		writeError(w, http.StatusInternalServerError, codes.Internal, "encoding the response failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
