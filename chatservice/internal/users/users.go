// Package users adapts the user service to the chat domain's UserDirectory:
// BatchGetUsers, called as a service with the shared service token.
package users

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/platform/auth"
)

// batchSize is BatchGetUsers' limit.
const batchSize = 100

// callTimeout bounds each BatchGetUsers call.
const callTimeout = 5 * time.Second

// Directory implements chat.UserDirectory on the user service.
type Directory struct {
	client       userv1.UserServiceClient
	serviceName  string
	serviceToken string
}

var _ chat.UserDirectory = (*Directory)(nil)

// New returns a directory calling the user service on conn as serviceName.
func New(conn grpc.ClientConnInterface, serviceName, serviceToken string) *Directory {
	return &Directory{client: userv1.NewUserServiceClient(conn), serviceName: serviceName, serviceToken: serviceToken}
}

// MissingUsers returns the ids the user service does not know.
func (d *Directory) MissingUsers(ctx context.Context, ids []string) ([]string, error) {
	found := make(map[string]bool, len(ids))
	for start := 0; start < len(ids); start += batchSize {
		batch := ids[start:min(start+batchSize, len(ids))]
		if err := d.lookup(ctx, batch, found); err != nil {
			return nil, err
		}
	}
	var missing []string
	for _, id := range ids {
		if !found[id] {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

func (d *Directory) lookup(ctx context.Context, ids []string, found map[string]bool) error {
	ctx, cancel := context.WithTimeout(auth.OutgoingAsService(ctx, d.serviceName, d.serviceToken), callTimeout)
	defer cancel()
	resp, err := d.client.BatchGetUsers(ctx, &userv1.BatchGetUsersRequest{UserIds: ids})
	if err != nil {
		return fmt.Errorf("user service BatchGetUsers: %w", err)
	}
	for _, u := range resp.GetUsers() {
		found[u.GetId()] = true
	}
	return nil
}
