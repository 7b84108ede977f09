package hub

import (
	"testing"

	"buf.build/go/protovalidate"

	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
)

// A heartbeat lists every connection of the node in one call, because
// the presence service drops the connections a heartbeat does not list:
// the hub's chunk is the presence API's limit, not less (a smaller one
// made every node over it flap its users offline and online).
func TestHeartbeatChunkIsTheAPILimit(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ids   int
		valid bool
	}{{heartbeatChunk, true}, {heartbeatChunk + 1, false}} {
		req := &presencev1.HeartbeatRequest{NodeId: "node-1", ConnectionIds: make([]string, tt.ids)}
		for i := range req.ConnectionIds {
			req.ConnectionIds[i] = randomID(12) // as newConn names them
		}
		if err := v.Validate(req); (err == nil) != tt.valid {
			t.Errorf("a heartbeat of %d connections: validation error %v, want valid=%v", tt.ids, err, tt.valid)
		}
	}
}
