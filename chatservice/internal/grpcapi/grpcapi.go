// Package grpcapi is the chat service's gRPC surface: thin handlers that
// turn requests into one call of the chat domain, map the result with the
// protoconv converters, and map domain errors to status codes in one
// function (toStatus). Authentication and request validation happen before
// the handlers, in the platform/rpc interceptors.
package grpcapi

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/chatservice/internal/protoconv"
	"github.com/parleyhq/parley/platform/auth"
)

// downloadChunk is the largest chunk DownloadAttachment sends.
const downloadChunk = 64 << 10

// Server implements chatv1.ChatServiceServer.
type Server struct {
	chatv1.UnimplementedChatServiceServer
	svc *chat.Service
	log *slog.Logger
}

var _ chatv1.ChatServiceServer = (*Server)(nil)

// New returns the handlers over svc.
func New(svc *chat.Service, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{svc: svc, log: logger}
}

// Register registers the handlers on a gRPC server.
func (s *Server) Register(r grpc.ServiceRegistrar) { chatv1.RegisterChatServiceServer(r, s) }

// caller is the authenticated principal as the domain sees it.
func caller(ctx context.Context) (chat.Caller, error) {
	p, err := auth.Require(ctx)
	if err != nil {
		return chat.Caller{}, err
	}
	return chat.Caller{UserID: p.UserID, Service: p.IsService()}, nil
}

// toStatus maps an error to a gRPC status: the one place domain errors
// become codes. Unexpected errors are logged here and reach the client as
// a bare Internal, without their text.
func (s *Server) toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, chat.ErrInvalidArgument), errors.Is(err, chat.ErrUnsupportedMedia):
		code = codes.InvalidArgument
	case errors.Is(err, chat.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, chat.ErrPermissionDenied):
		code = codes.PermissionDenied
	case errors.Is(err, chat.ErrFailedPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, chat.ErrTooLarge):
		code = codes.ResourceExhausted
	case errors.Is(err, chat.ErrAborted):
		code = codes.Aborted
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	if code != codes.Unknown {
		return status.Error(code, err.Error())
	}
	if st, ok := status.FromError(err); ok {
		return st.Err() // from auth, or a client stream that broke
	}
	s.log.ErrorContext(ctx, "chat request failed", slog.Any("error", err))
	return status.Error(codes.Internal, "internal error")
}

// CreateChannel creates a channel.
func (s *Server) CreateChannel(ctx context.Context, req *chatv1.CreateChannelRequest) (*chatv1.CreateChannelResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := s.svc.CreateChannel(ctx, c, chat.NewChannel{
		Name: req.GetName(), Type: req.GetType(), Description: req.GetDescription(), MemberIDs: req.GetMemberIds(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.CreateChannelResponse{Channel: protoconv.ToProtoChannel(ch)}, nil
}

// ListChannels lists the caller's channels.
func (s *Server) ListChannels(ctx context.Context, req *chatv1.ListChannelsRequest) (*chatv1.ListChannelsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	chans, next, err := s.svc.ListChannels(ctx, c, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &chatv1.ListChannelsResponse{NextPageToken: next, Channels: make([]*chatv1.JoinedChannel, len(chans))}
	for i, j := range chans {
		out.Channels[i] = protoconv.ToProtoJoinedChannel(j)
	}
	return out, nil
}

// BrowseChannels lists public channels.
func (s *Server) BrowseChannels(ctx context.Context, req *chatv1.BrowseChannelsRequest) (*chatv1.BrowseChannelsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	chans, next, err := s.svc.BrowseChannels(ctx, c, req.GetQuery(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &chatv1.BrowseChannelsResponse{NextPageToken: next, Channels: make([]*chatv1.Channel, len(chans))}
	for i, ch := range chans {
		out.Channels[i] = protoconv.ToProtoChannel(ch)
	}
	return out, nil
}

// GetChannel returns a channel.
func (s *Server) GetChannel(ctx context.Context, req *chatv1.GetChannelRequest) (*chatv1.GetChannelResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := s.svc.GetChannel(ctx, c, req.GetChannelId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.GetChannelResponse{Channel: protoconv.ToProtoChannel(ch)}, nil
}

// JoinChannel joins the caller or adds a user.
func (s *Server) JoinChannel(ctx context.Context, req *chatv1.JoinChannelRequest) (*chatv1.JoinChannelResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.svc.JoinChannel(ctx, c, req.GetChannelId(), req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.JoinChannelResponse{Member: protoconv.ToProtoMember(m)}, nil
}

// LeaveChannel removes the caller.
func (s *Server) LeaveChannel(ctx context.Context, req *chatv1.LeaveChannelRequest) (*chatv1.LeaveChannelResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.svc.LeaveChannel(ctx, c, req.GetChannelId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.LeaveChannelResponse{}, nil
}

// RemoveMember removes a member.
func (s *Server) RemoveMember(ctx context.Context, req *chatv1.RemoveMemberRequest) (*chatv1.RemoveMemberResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.svc.RemoveMember(ctx, c, req.GetChannelId(), req.GetUserId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.RemoveMemberResponse{}, nil
}

// ListMembers lists a channel's members.
func (s *Server) ListMembers(ctx context.Context, req *chatv1.ListMembersRequest) (*chatv1.ListMembersResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	members, next, err := s.svc.ListMembers(ctx, c, req.GetChannelId(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &chatv1.ListMembersResponse{NextPageToken: next, Members: make([]*chatv1.Member, len(members))}
	for i, m := range members {
		out.Members[i] = protoconv.ToProtoMember(m)
	}
	return out, nil
}

// SetMemberRole changes a member's role.
func (s *Server) SetMemberRole(ctx context.Context, req *chatv1.SetMemberRoleRequest) (*chatv1.SetMemberRoleResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.svc.SetMemberRole(ctx, c, req.GetChannelId(), req.GetUserId(), req.GetRole())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.SetMemberRoleResponse{Member: protoconv.ToProtoMember(m)}, nil
}

// SendMessage stores and announces a message.
func (s *Server) SendMessage(ctx context.Context, req *chatv1.SendMessageRequest) (*chatv1.SendMessageResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.svc.SendMessage(ctx, c, chat.NewMessage{
		ChannelID: req.GetChannelId(), Content: req.GetContent(), Type: req.GetType(),
		ClientMsgID: req.GetClientMsgId(), Metadata: req.GetMetadata(), AttachmentID: req.GetAttachmentId(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.SendMessageResponse{Message: protoconv.ToProtoMessage(m)}, nil
}

// GetMessages pages through history.
func (s *Server) GetMessages(ctx context.Context, req *chatv1.GetMessagesRequest) (*chatv1.GetMessagesResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	msgs, more, err := s.svc.GetMessages(ctx, c, chat.HistoryRequest{
		ChannelID: req.GetChannelId(), BeforeSeq: req.BeforeSeq, AfterSeq: req.AfterSeq, Limit: int(req.GetLimit()),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &chatv1.GetMessagesResponse{HasMore: more, Messages: make([]*chatv1.Message, len(msgs))}
	for i, m := range msgs {
		out.Messages[i] = protoconv.ToProtoMessage(m)
	}
	return out, nil
}

// EditMessage edits a message.
func (s *Server) EditMessage(ctx context.Context, req *chatv1.EditMessageRequest) (*chatv1.EditMessageResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.svc.EditMessage(ctx, c, req.GetChannelId(), req.GetMessageId(), req.GetContent())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.EditMessageResponse{Message: protoconv.ToProtoMessage(m)}, nil
}

// DeleteMessage deletes a message.
func (s *Server) DeleteMessage(ctx context.Context, req *chatv1.DeleteMessageRequest) (*chatv1.DeleteMessageResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.svc.DeleteMessage(ctx, c, req.GetChannelId(), req.GetMessageId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.DeleteMessageResponse{Message: protoconv.ToProtoMessage(m)}, nil
}

// MarkRead moves the caller's read position.
func (s *Server) MarkRead(ctx context.Context, req *chatv1.MarkReadRequest) (*chatv1.MarkReadResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	last, unread, err := s.svc.MarkRead(ctx, c, req.GetChannelId(), req.GetSeq())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.MarkReadResponse{LastReadSeq: last, UnreadCount: unread}, nil
}

// SearchMessages searches messages.
func (s *Server) SearchMessages(ctx context.Context, req *chatv1.SearchMessagesRequest) (*chatv1.SearchMessagesResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	msgs, next, err := s.svc.SearchMessages(ctx, c, chat.SearchRequest{
		Query: req.GetQuery(), ChannelID: req.GetChannelId(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &chatv1.SearchMessagesResponse{NextPageToken: next, Messages: make([]*chatv1.Message, len(msgs))}
	for i, m := range msgs {
		out.Messages[i] = protoconv.ToProtoMessage(m)
	}
	return out, nil
}

// CheckAccess tells a service what a user may do in a channel.
func (s *Server) CheckAccess(ctx context.Context, req *chatv1.CheckAccessRequest) (*chatv1.CheckAccessResponse, error) {
	if _, err := auth.RequireService(ctx); err != nil {
		return nil, err
	}
	a, err := s.svc.CheckAccess(ctx, chat.Caller{Service: true}, req.GetChannelId(), req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.CheckAccessResponse{
		CanRead: a.CanRead, CanWrite: a.CanWrite, IsMember: a.IsMember, Role: a.Role, ChannelType: a.ChannelType,
	}, nil
}

// GetAttachment returns attachment metadata.
func (s *Server) GetAttachment(ctx context.Context, req *chatv1.GetAttachmentRequest) (*chatv1.GetAttachmentResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.svc.GetAttachment(ctx, c, req.GetAttachmentId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &chatv1.GetAttachmentResponse{Attachment: protoconv.ToProtoAttachment(a)}, nil
}

// UploadAttachment receives the info, then the chunks, and stores the file.
func (s *Server) UploadAttachment(stream grpc.ClientStreamingServer[chatv1.UploadAttachmentRequest, chatv1.UploadAttachmentResponse]) error {
	ctx := stream.Context()
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return status.Error(codes.InvalidArgument, "upload without info")
	}
	if err != nil {
		return err
	}
	info := first.GetInfo()
	if info == nil {
		return status.Error(codes.InvalidArgument, "the first request of an upload carries info")
	}
	a, err := s.svc.UploadAttachment(ctx, c, chat.UploadInfo{
		ChannelID: info.GetChannelId(), Filename: info.GetFilename(), ContentType: info.GetContentType(), Size: info.GetSize(),
	}, &chunkReader{stream: stream})
	if err != nil {
		return s.toStatus(ctx, err)
	}
	return stream.SendAndClose(&chatv1.UploadAttachmentResponse{Attachment: protoconv.ToProtoAttachment(a)})
}

// chunkReader reads an upload's chunks as one byte stream.
type chunkReader struct {
	stream grpc.ClientStreamingServer[chatv1.UploadAttachmentRequest, chatv1.UploadAttachmentResponse]
	buf    []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		req, err := r.stream.Recv()
		if err != nil {
			return 0, err // io.EOF at the end
		}
		if req.GetInfo() != nil {
			return 0, status.Error(codes.InvalidArgument, "info sent twice in one upload")
		}
		r.buf = req.GetChunk()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// DownloadAttachment sends the metadata, then the content in chunks.
func (s *Server) DownloadAttachment(req *chatv1.DownloadAttachmentRequest, stream grpc.ServerStreamingServer[chatv1.DownloadAttachmentResponse]) error {
	ctx := stream.Context()
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	a, rc, err := s.svc.OpenAttachment(ctx, c, req.GetAttachmentId())
	if err != nil {
		return s.toStatus(ctx, err)
	}
	defer func() {
		if cerr := rc.Close(); cerr != nil {
			s.log.WarnContext(ctx, "close attachment stream", slog.String("attachment_id", a.ID), slog.Any("error", cerr))
		}
	}()
	if err := stream.Send(&chatv1.DownloadAttachmentResponse{
		Payload: &chatv1.DownloadAttachmentResponse_Attachment{Attachment: protoconv.ToProtoAttachment(a)},
	}); err != nil {
		return err
	}
	buf := make([]byte, downloadChunk)
	for {
		n, rerr := io.ReadFull(rc, buf)
		if n > 0 {
			chunk := make([]byte, n)
			copy(chunk, buf[:n])
			if err := stream.Send(&chatv1.DownloadAttachmentResponse{
				Payload: &chatv1.DownloadAttachmentResponse_Chunk{Chunk: chunk},
			}); err != nil {
				return err
			}
		}
		switch {
		case errors.Is(rerr, io.EOF), errors.Is(rerr, io.ErrUnexpectedEOF):
			return nil
		case rerr != nil:
			return s.toStatus(ctx, rerr)
		}
	}
}
