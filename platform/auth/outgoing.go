package auth

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// OutgoingAsService returns ctx with the metadata that authenticates the
// caller to another Parley service as service name.
func OutgoingAsService(ctx context.Context, name, serviceToken string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, ServiceTokenHeader, serviceToken, "x-parley-service-name", name)
}

// OutgoingAsUser returns ctx forwarding the user's bearer token, for a call
// made on the user's behalf.
func OutgoingAsUser(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}
