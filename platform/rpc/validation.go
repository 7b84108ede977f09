package rpc

import (
	"context"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The protovalidate interceptor reports violations as a buf.validate.Violations
// status detail. Clients in other languages, and grpc-gateway's REST errors,
// understand the standard google.rpc.BadRequest better, so the server adds
// one next to it.

func unaryBadRequest(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, withBadRequest(err)
}

func streamBadRequest(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return withBadRequest(handler(srv, ss))
}

// withBadRequest adds an errdetails.BadRequest to an InvalidArgument status
// that carries Violations but no BadRequest yet.
func withBadRequest(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return err
	}
	var violations *validate.Violations
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			return err
		case *validate.Violations:
			violations = d
		}
	}
	if violations == nil {
		return err
	}
	br := &errdetails.BadRequest{}
	for _, v := range violations.GetViolations() {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       protovalidate.FieldPathString(v.GetField()),
			Description: v.GetMessage(),
			Reason:      v.GetRuleId(),
		})
	}
	withDetails, derr := st.WithDetails(br)
	if derr != nil {
		return err
	}
	return withDetails.Err()
}

// FieldViolation is one invalid field of a request.
type FieldViolation struct {
	Field       string // dotted path, e.g. "user.email" or "ids[2]"
	Description string // human-readable rule message
}

// FieldViolations returns the invalid fields an InvalidArgument error
// reports, read from its errdetails.BadRequest or, failing that, its
// buf.validate.Violations detail; nil when there are none.
func FieldViolations(err error) []FieldViolation {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return nil
	}
	var out []FieldViolation
	var fallback []FieldViolation
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				out = append(out, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		case *validate.Violations:
			for _, v := range d.GetViolations() {
				fallback = append(fallback, FieldViolation{
					Field:       protovalidate.FieldPathString(v.GetField()),
					Description: v.GetMessage(),
				})
			}
		}
	}
	if out == nil {
		return fallback
	}
	return out
}
