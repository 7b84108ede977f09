package chat

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestTerms(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Crème BRÛLÉE", []string{"creme", "brulee"}},
		{"crème brûlée, crème!", []string{"creme", "brulee"}},
		{"naïve café-au-lait", []string{"naive", "cafe", "au", "lait"}},
		{"a I x 42 7", []string{"42"}},
		{"hello_world foo.bar@baz", []string{"hello", "world", "foo", "bar", "baz"}},
		{"Ångström São Paulo Łódź", []string{"angstrom", "sao", "paulo", "łodz"}},
		{"Straße", []string{"straße"}},
		{"ＦＵＬＬ width", []string{"ｆｕｌｌ", "width"}},
		{"   ", nil},
		{"", nil},
		{strings.Repeat("x", 100), []string{strings.Repeat("x", maxTermRunes)}},
	}
	for _, tc := range tests {
		if got := Terms(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Terms(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	var b strings.Builder
	for i := range 1000 {
		b.WriteString("w")
		b.WriteString(strings.Repeat("a", i%50+2))
		b.WriteString(" ")
	}
	if n := len(Terms(b.String())); n > maxTerms {
		t.Errorf("%d terms, at most %d", n, maxTerms)
	}
}

func TestMentions(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"hi @Alice and @bob.", []string{"alice", "bob"}},
		{"@alice @ALICE @alice", []string{"alice"}},
		{"mail bob@example.com", nil},
		{"@ab is too short, @a.b.c is fine", []string{"a.b.c"}},
		{"@" + strings.Repeat("x", 33), nil},
		{"(@carol) @dave_1!", []string{"carol", "dave_1"}},
		{"@@eve", nil},
		{"", nil},
	}
	for _, tc := range tests {
		if got := Mentions(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Mentions(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCleanContent(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		required bool
		want     string
		wantErr  bool
	}{
		{"trimmed", "  hi \n", true, "hi", false},
		{"blank", " \t ", true, "", true},
		{"blank with attachment", " ", false, "", false},
		{"4000 runes", strings.Repeat("ü", 4000), true, strings.Repeat("ü", 4000), false},
		{"4001 runes", strings.Repeat("ü", 4001), true, "", true},
		{"invalid UTF-8", "\xff", true, "", true},
	}
	for _, tc := range tests {
		got, err := cleanContent(tc.in, tc.required)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: %q, %v", tc.name, got, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v is not ErrInvalidArgument", tc.name, err)
		}
	}
}

func TestCheckMetadata(t *testing.T) {
	many := map[string]string{}
	for i := range 17 {
		many[string(rune('a'+i))] = "v"
	}
	large := map[string]string{}
	for i := range 9 {
		large[string(rune('a'+i))] = strings.Repeat("v", 1000)
	}
	tests := []struct {
		name string
		md   map[string]string
		ok   bool
	}{
		{"none", nil, true},
		{"some", map[string]string{"reply_to": "m1", "a.b:c-d": "x"}, true},
		{"17 pairs", many, false},
		{"over 8 KiB in total", large, false},
		{"empty key", map[string]string{"": "v"}, false},
		{"key with a space", map[string]string{"a b": "v"}, false},
		{"key of 65", map[string]string{strings.Repeat("k", 65): "v"}, false},
		{"value of 1025", map[string]string{"k": strings.Repeat("v", 1025)}, false},
	}
	for _, tc := range tests {
		if err := checkMetadata(tc.md); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestSizeGuard(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		declared int64
		max      int64
		want     error
	}{
		{"exact", "hello", 5, 10, nil},
		{"short", "hell", 5, 10, ErrInvalidArgument},
		{"long", "hello!", 5, 10, ErrInvalidArgument},
		{"over the limit", "hello world", 20, 10, ErrTooLarge},
	}
	for _, tc := range tests {
		g := &sizeGuard{r: iotest.OneByteReader(strings.NewReader(tc.data)), declared: tc.declared, max: tc.max}
		_, err := io.ReadAll(g)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestIDs(t *testing.T) {
	if a, b := messageIDFor("c", "u", "k"), messageIDFor("c", "u", "k"); a != b || !validID(a) {
		t.Errorf("message ids %q %q", a, b)
	}
	if messageIDFor("c", "u", "k") == messageIDFor("c", "v", "k") {
		t.Error("two senders' client_msg_id share a message id")
	}
	if a, b := sentEventID("m1"), sentEventID("m1"); a != b || a == sentEventID("m2") {
		t.Error("sent event ids are not a function of the message id")
	}
	if dmKey("b", "a") != "a:b" || dmChannelID(dmKey("a", "b")) != dmChannelID(dmKey("b", "a")) || !validID(dmChannelID("a:b")) {
		t.Error("direct channel ids depend on the order of the pair")
	}
	if id := newID("c"); !validID(id) || len(id) != 33 {
		t.Errorf("newID = %q", id)
	}
}

func TestPageTokens(t *testing.T) {
	tok, err := encodeToken(searchToken{CreatedAt: 5, Seq: 6, ID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	var got searchToken
	if err := decodeToken(tok, &got); err != nil || got != (searchToken{CreatedAt: 5, Seq: 6, ID: "m"}) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"!!", "bm90IGpzb24"} {
		if err := decodeToken(bad, &got); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("decodeToken(%q) = %v", bad, err)
		}
	}
}

func TestRelayBackoff(t *testing.T) {
	prev := relayBackoff(0)
	for n := 1; n < 20; n++ {
		d := relayBackoff(n)
		if d < prev || d > 60e9 {
			t.Fatalf("backoff(%d) = %s after %s", n, d, prev)
		}
		prev = d
	}
}
