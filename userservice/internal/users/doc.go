// Package users holds the user service's business rules: accounts and their
// validation, password login with rate limiting, access and refresh tokens
// (sessions), profiles, user search and the friend graph, and the events
// those changes announce.
//
// It declares the small interfaces it consumes (stores, password hasher,
// token issuer, login limiter, event publisher) and knows nothing about
// gRPC, MongoDB or Redis; internal/store, internal/ratelimit and
// internal/grpcapi adapt those to it.
package users
