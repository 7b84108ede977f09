package grpcapi

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/userservice/internal/users"
)

// toProtoPublicUser is a user as anyone may see it. It is built field by
// field from the public ones, never by copying the private view and
// clearing fields, so a field added later stays private until it is listed
// here.
func toProtoPublicUser(u users.User) *userv1.User {
	return &userv1.User{
		Id:            u.ID,
		Username:      u.Username,
		DisplayName:   u.DisplayName,
		AvatarUrl:     u.AvatarURL,
		StatusMessage: u.StatusMessage,
		CreatedAt:     ts(u.CreatedAt),
		UpdatedAt:     ts(u.UpdatedAt),
	}
}

// toProtoPrivateUser is the account as its owner sees it: the public
// profile plus email and roles. The password hash never leaves.
func toProtoPrivateUser(u users.User) *userv1.User {
	p := toProtoPublicUser(u)
	p.Email = u.Email
	p.Roles = append([]string(nil), u.Roles...)
	return p
}

func toProtoPublicUsers(us []users.User) []*userv1.User {
	out := make([]*userv1.User, 0, len(us))
	for _, u := range us {
		out = append(out, toProtoPublicUser(u))
	}
	return out
}

func toProtoFriend(f users.Friend) *userv1.Friend {
	return &userv1.Friend{User: toProtoPublicUser(f.User), State: string(f.State), Since: ts(f.Since)}
}

func toProtoJWKS(keys []auth.JWK) []*userv1.JSONWebKey {
	out := make([]*userv1.JSONWebKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, &userv1.JSONWebKey{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Use: k.Use, Alg: k.Alg})
	}
	return out
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
