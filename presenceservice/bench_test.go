package presenceservice_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"buf.build/go/protovalidate"

	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
)

// BenchmarkGetUserStatus measures GetUserStatus through the real gRPC
// server (auth hook, validation, logging interceptors) from parallel
// clients, over 1,000 users of whom half are online.
//
//	PARLEY_REDIS_URL=redis://127.0.0.1:6379 go test -run '^$' -bench GetUserStatus -benchmem .
func BenchmarkGetUserStatus(b *testing.B) {
	s := start(b, nil)
	const users = 1000
	ids := make([]string, users)
	for i := range ids {
		ids[i] = fmt.Sprintf("user%04d", i)
		if i%2 == 0 {
			if _, err := s.client.Connect(asGateway(), &presencev1.ConnectRequest{UserId: ids[i], ConnectionId: "c" + ids[i], NodeId: "gw"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx := as("tok-bob")
	// The first read of each user merges MongoDB's copy into Redis; the
	// benchmark measures the steady state after it.
	for _, id := range ids {
		if _, err := s.client.GetUserStatus(ctx, &presencev1.GetUserStatusRequest{UserId: id}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[next.Add(1)%users]
			if _, err := s.client.GetUserStatus(ctx, &presencev1.GetUserStatusRequest{UserId: id}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkValidateHeartbeat measures the protovalidate check every
// Heartbeat of 100,000 connection ids goes through before the handler.
func BenchmarkValidateHeartbeat(b *testing.B) {
	v, err := protovalidate.New()
	if err != nil {
		b.Fatal(err)
	}
	req := &presencev1.HeartbeatRequest{NodeId: "gateway-7f9c-0", ConnectionIds: make([]string, 100_000)}
	for i := range req.ConnectionIds {
		req.ConnectionIds[i] = fmt.Sprintf("conn-%08d", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Validate(req); err != nil {
			b.Fatal(err)
		}
	}
}
