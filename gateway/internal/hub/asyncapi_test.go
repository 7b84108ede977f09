package hub

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// asyncAPIPath is the protocol's AsyncAPI document, from this package.
var asyncAPIPath = filepath.Join("..", "..", "..", "apis", "asyncapi", "parley-ws.yaml")

type asyncRef struct {
	Ref string `yaml:"$ref"`
}

type asyncDoc struct {
	AsyncAPI string `yaml:"asyncapi"`
	Info     struct {
		CloseCodes []struct {
			Code    int    `yaml:"code"`
			Meaning string `yaml:"meaning"`
		} `yaml:"x-parley-close-codes"`
	} `yaml:"info"`
	Channels map[string]struct {
		Address  string              `yaml:"address"`
		Messages map[string]asyncRef `yaml:"messages"`
	} `yaml:"channels"`
	Operations map[string]struct {
		Action   string     `yaml:"action"`
		Channel  asyncRef   `yaml:"channel"`
		Messages []asyncRef `yaml:"messages"`
		Reply    *struct {
			Messages []asyncRef `yaml:"messages"`
		} `yaml:"reply"`
	} `yaml:"operations"`
	Components struct {
		Schemas map[string]struct {
			Enum []string `yaml:"enum"`
		} `yaml:"schemas"`
		Messages map[string]struct {
			Name    string `yaml:"name"`
			Payload struct {
				Properties map[string]struct {
					Const string `yaml:"const"`
				} `yaml:"properties"`
			} `yaml:"payload"`
		} `yaml:"messages"`
	} `yaml:"components"`
}

// TestAsyncAPIDocument checks that the AsyncAPI document and package
// protocol describe the same protocol: the same frame types in each
// direction, error codes and close codes.
func TestAsyncAPIDocument(t *testing.T) {
	b, err := os.ReadFile(asyncAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc asyncDoc
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse %s: %v", asyncAPIPath, err)
	}
	if doc.AsyncAPI != "3.0.0" {
		t.Errorf("asyncapi = %q, want 3.0.0", doc.AsyncAPI)
	}
	ws, ok := doc.Channels["ws"]
	if !ok || ws.Address != "/v1/ws" {
		t.Fatalf("channel ws = %+v, want address /v1/ws", ws)
	}
	// frameType resolves an operation's message reference to the frame
	// type its payload declares.
	used := make(map[string]bool)
	frameType := func(r asyncRef) string {
		t.Helper()
		key, ok := strings.CutPrefix(r.Ref, "#/channels/ws/messages/")
		if !ok {
			t.Fatalf("operation message %q is not a message of channel ws", r.Ref)
		}
		name, ok := strings.CutPrefix(ws.Messages[key].Ref, "#/components/messages/")
		if !ok {
			t.Fatalf("channel message %q does not point to a component message", key)
		}
		m, ok := doc.Components.Messages[name]
		if !ok {
			t.Fatalf("component message %q missing", name)
		}
		used[name] = true
		typ := m.Payload.Properties["type"].Const
		if typ == "" || m.Name != typ {
			t.Fatalf("message %q: name %q, payload type const %q", name, m.Name, typ)
		}
		return typ
	}
	var received, sent []string
	for name, op := range doc.Operations {
		if op.Channel.Ref != "#/channels/ws" {
			t.Errorf("operation %s on channel %q", name, op.Channel.Ref)
		}
		for _, r := range op.Messages {
			switch op.Action {
			case "receive":
				received = append(received, frameType(r))
			case "send":
				sent = append(sent, frameType(r))
			default:
				t.Errorf("operation %s: action %q", name, op.Action)
			}
		}
		if op.Reply != nil {
			for _, r := range op.Reply.Messages {
				if typ := frameType(r); !slices.Contains(protocol.ServerTypes(), typ) {
					t.Errorf("operation %s replies with %q, not a server frame", name, typ)
				}
			}
		}
	}
	sameSet(t, "client frame types (receive operations)", received, protocol.ClientTypes())
	sameSet(t, "server frame types (send operations)", sent, protocol.ServerTypes())
	for name := range doc.Components.Messages {
		if !used[name] {
			t.Errorf("component message %q is used by no operation", name)
		}
	}
	sameSet(t, "error codes", doc.Components.Schemas["ErrorCode"].Enum, protocol.ErrorCodes())
	var codes []string
	for _, c := range doc.Info.CloseCodes {
		if c.Meaning == "" {
			t.Errorf("close code %d has no meaning", c.Code)
		}
		codes = append(codes, itoa(c.Code))
	}
	var want []string
	for _, c := range protocol.CloseCodes() {
		want = append(want, itoa(c))
	}
	sameSet(t, "close codes", codes, want)
}

func sameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	g := slices.Compact(slices.Sorted(slices.Values(got)))
	w := slices.Compact(slices.Sorted(slices.Values(want)))
	if !slices.Equal(g, w) {
		t.Errorf("%s: document has %v, package protocol has %v", what, g, w)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
