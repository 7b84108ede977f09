package rpc_test

import (
	"context"
	"net"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/parleyhq/parley/platform/rpc"
)

// The project's own annotated protos are generated elsewhere, so this test
// builds an annotated message at run time:
//
//	message EchoRequest {
//	  string name = 1 [(buf.validate.field).string.min_len = 3];
//	  repeated string tags = 2 [(buf.validate.field).repeated.items.string.max_len = 4];
//	}
func echoRequestDescriptor(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	rules := func(r *validate.FieldRules) *descriptorpb.FieldOptions {
		o := &descriptorpb.FieldOptions{}
		proto.SetExtension(o, validate.E_Field, r)
		return o
	}
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("rpctest/v1/echo.proto"),
		Package:    proto.String("rpctest.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"buf/validate/validate.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("EchoRequest"),
			Field: []*descriptorpb.FieldDescriptorProto{
				{
					Name: proto.String("name"), JsonName: proto.String("name"), Number: proto.Int32(1), Type: str,
					Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
					Options: rules(validate.FieldRules_builder{
						String: validate.StringRules_builder{MinLen: proto.Uint64(3)}.Build(),
					}.Build()),
				},
				{
					Name: proto.String("tags"), JsonName: proto.String("tags"), Number: proto.Int32(2), Type: str,
					Label: descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum(),
					Options: rules(validate.FieldRules_builder{
						Repeated: validate.RepeatedRules_builder{
							Items: validate.FieldRules_builder{
								String: validate.StringRules_builder{MaxLen: proto.Uint64(4)}.Build(),
							}.Build(),
						}.Build(),
					}.Build()),
				},
			},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("build descriptor: %v", err)
	}
	return fd.Messages().ByName("EchoRequest")
}

const echoMethod = "/rpctest.v1.Echo/Echo"

// registerEcho registers a unary method that returns its request.
func registerEcho(s *grpc.Server, md protoreflect.MessageDescriptor) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "rpctest.v1.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Echo",
			Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				in := dynamicpb.NewMessage(md)
				if err := dec(in); err != nil {
					return nil, err
				}
				echo := func(_ context.Context, req any) (any, error) { return req, nil }
				if interceptor == nil {
					return echo(ctx, in)
				}
				return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: echoMethod}, echo)
			},
		}},
	}, struct{}{})
}

func TestValidation(t *testing.T) {
	md := echoRequestDescriptor(t)
	s, err := rpc.NewServer(rpc.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	registerEcho(s, md)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rpc.Serve(ctx, s, lis) }()
	conn, err := rpc.Dial(lis.Addr().String(), rpc.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	tests := []struct {
		name       string
		reqName    string
		tags       []string
		wantFields []string // invalid fields, in order; nil = valid
	}{
		{name: "valid", reqName: "alice", tags: []string{"a", "bcd"}},
		{name: "short name", reqName: "al", wantFields: []string{"name"}},
		{name: "long tag", reqName: "alice", tags: []string{"ok", "toolong"}, wantFields: []string{"tags[1]"}},
		{name: "both", reqName: "", tags: []string{"toolong"}, wantFields: []string{"name", "tags[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := dynamicpb.NewMessage(md)
			req.Set(md.Fields().ByName("name"), protoreflect.ValueOfString(tt.reqName))
			list := req.Mutable(md.Fields().ByName("tags")).List()
			for _, tag := range tt.tags {
				list.Append(protoreflect.ValueOfString(tag))
			}
			resp := dynamicpb.NewMessage(md)
			err := conn.Invoke(callCtx(t, ""), echoMethod, req, resp)
			if tt.wantFields == nil {
				if err != nil {
					t.Fatalf("Invoke: %v", err)
				}
				if got := resp.Get(md.Fields().ByName("name")).String(); got != tt.reqName {
					t.Fatalf("echoed name %q, want %q", got, tt.reqName)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
			// The standard BadRequest detail, through the helper.
			fv := rpc.FieldViolations(err)
			if len(fv) != len(tt.wantFields) {
				t.Fatalf("FieldViolations = %+v, want fields %v", fv, tt.wantFields)
			}
			for i, want := range tt.wantFields {
				if fv[i].Field != want || fv[i].Description == "" {
					t.Errorf("violation %d = %+v, want field %q with a description", i, fv[i], want)
				}
			}
			// And protovalidate's own detail, for clients that use it.
			var found bool
			for _, d := range status.Convert(err).Details() {
				if v, ok := d.(*validate.Violations); ok {
					found = true
					if got := protovalidate.FieldPathString(v.GetViolations()[0].GetField()); got != tt.wantFields[0] {
						t.Errorf("Violations field = %q, want %q", got, tt.wantFields[0])
					}
				}
			}
			if !found {
				t.Error("no buf.validate.Violations detail")
			}
		})
	}
}

func TestFieldViolationsOfOtherErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"nil", nil},
		{"not found", status.Error(codes.NotFound, "x")},
		{"invalid without details", status.Error(codes.InvalidArgument, "x")},
	}
	for _, tt := range tests {
		if got := rpc.FieldViolations(tt.err); got != nil {
			t.Errorf("%s: FieldViolations = %v, want nil", tt.name, got)
		}
	}
}
