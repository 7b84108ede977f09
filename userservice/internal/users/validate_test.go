package users

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeUsername(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{"Alice_B.2", "alice_b.2", true},
		{"abc", "abc", true},
		{strings.Repeat("a", 32), strings.Repeat("a", 32), true},
		{"ab", "", false},
		{strings.Repeat("a", 33), "", false},
		{"", "", false},
		{"al ice", "", false},
		{"al-ice", "", false},
		{"alice@x", "", false},
		{"\u212Aelvin", "", false}, // Kelvin sign lower-cases to "k"
		{"ålice", "", false},
		{"аlice", "", false}, // Cyrillic a
		{"alice\x00", "", false},
		{`{"$gt":""}`, "", false},
		{"$where", "", false},
	}
	for _, tt := range tests {
		got, err := NormalizeUsername(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("NormalizeUsername(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("NormalizeUsername(%q) error %v is not ErrInvalidArgument", tt.in, err)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"bob@example.com", "bob@example.com", true},
		{"  Bob.Smith+tag@Example.COM ", "bob.smith+tag@example.com", true},
		{"a@b", "a@b", true},
		{"", "", false},
		{"bob", "", false},
		{"bob@", "", false},
		{"@example.com", "", false},
		{"bob@@example.com", "", false},
		{"bob@exa mple.com", "", false},
		{"Bob <bob@example.com>", "", false},
		{"b\u212Aob@example.com", "", false},
		{"bob@exämple.com", "", false},
		{"bob@-example.com", "", false},
		{strings.Repeat("a", 65) + "@example.com", "", false},
		{"a@" + strings.Repeat("b", 250) + ".com", "", false},
		{`{"$gt":""}`, "", false},
	}
	for _, tt := range tests {
		got, err := NormalizeEmail(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestNormalizeLogin(t *testing.T) {
	tests := []struct {
		in, want string
		email    bool
		ok       bool
	}{
		{"Alice", "alice", false, true},
		{"Alice@Example.com", "alice@example.com", true, true},
		{`{"$gt": ""}`, "", false, false},
		{`{"$ne": null}`, "", false, false},
		{"a", "", false, false},
		{"", "", false, false},
		{"x@", "", false, false},
	}
	for _, tt := range tests {
		got, email, err := normalizeLogin(tt.in)
		if (err == nil) != tt.ok || got != tt.want || email != tt.email {
			t.Errorf("normalizeLogin(%q) = %q, %v, %v; want %q, %v, ok=%v", tt.in, got, email, err, tt.want, tt.email, tt.ok)
		}
		var fe *FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "login") {
			t.Errorf("normalizeLogin(%q) error %v is not about the login field", tt.in, err)
		}
	}
}

func TestNormalizeDisplayName(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"plain", "Alice", "Alice", true},
		{"trimmed", "  Alice Smith   ", "Alice Smith", true},
		{"trailing tab", "Alice\t", "", false},
		{"emoji", "Alice 🚀", "Alice 🚀", true},
		{"CJK", "山田太郎", "山田太郎", true},
		{"NFC", "Jose\u0301", "José", true},
		{"64 runes", strings.Repeat("é", 64), strings.Repeat("é", 64), true},
		{"65 runes", strings.Repeat("é", 65), "", false},
		{"empty", "", "", false},
		{"blank", "   ", "", false},
		{"newline", "Ali\nce", "", false},
		{"tab inside", "Ali\tce", "", false},
		{"NUL", "Ali\x00ce", "", false},
		{"RLO bidi override", "Alice\u202Etxt.exe", "", false},
		{"LRI isolate", "\u2066Alice", "", false},
		{"zero width space", "Al\u200Bice", "", false},
		{"zero width joiner", "Al\u200Dice", "", false},
		{"BOM", "\uFEFFAlice", "", false},
		{"line separator", "Ali\u2028ce", "", false},
		{"private use", "Ali\uE000ce", "", false},
		{"invalid UTF-8", "Ali\xffce", "", false},
		{"unassigned", "Ali\U000E01F0ce", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeDisplayName(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("NormalizeDisplayName(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestNormalizeAvatarURL(t *testing.T) {
	const prefix = DefaultAvatarPathPrefix
	tests := []struct {
		in   string
		ok   bool
		want string
	}{
		{"", true, ""},
		{"https://cdn.example.com/a.png", true, "https://cdn.example.com/a.png"},
		{"https://cdn.example.com/a.png?size=64", true, "https://cdn.example.com/a.png?size=64"},
		{"/v1/attachments/abc123", true, "/v1/attachments/abc123"},
		{"http://cdn.example.com/a.png", false, ""},
		{"javascript:alert(1)", false, ""},
		{"data:image/png;base64,AAAA", false, ""},
		{"https://user:pw@cdn.example.com/a.png", false, ""},
		{"https:///a.png", false, ""},
		{"//evil.example/a.png", false, ""},
		{"/v1/attachments/", false, ""},
		{"/v1/attachments/../../admin", false, ""},
		{"/v1/attachments//x", false, ""},
		{"/etc/passwd", false, ""},
		{"v1/attachments/abc", false, ""},
		{"https://cdn.example.com/a b.png", false, ""},
		{"https://cdn.exämple.com/a.png", false, ""},
		{"/v1/attachments/a\\b", false, ""},
		{"https://" + strings.Repeat("a", AvatarURLMaxLen), false, ""},
	}
	for _, tt := range tests {
		got, err := normalizeAvatarURL(tt.in, prefix)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("normalizeAvatarURL(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSearchKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Alice", "alice"},
		{"  ALICE ", "alice"},
		{"Ａｌｉｃｅ", "alice"}, // full-width letters
		{"ﬁona", "fiona"},  // ligature
		{"José", "josé"},
		{"Jose\u0301", "josé"},
	}
	for _, tt := range tests {
		if got := SearchKey(tt.in); got != tt.want {
			t.Errorf("SearchKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "   ", "a\u202Eb", "a\x00", strings.Repeat("a", SearchQueryMaxLen+1)} {
		if _, err := normalizeSearchQuery(bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("normalizeSearchQuery(%q) err = %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestPageTokens(t *testing.T) {
	for _, key := range []string{"alice", "a:b", "ü"} {
		got, err := decodePageToken(encodePageToken(key))
		if err != nil || got != key {
			t.Errorf("round trip of %q = %q, %v", key, got, err)
		}
	}
	for _, bad := range []string{"!!", "dGVzdA", "djE6"} { // not base64url; no prefix; prefix only
		if _, err := decodePageToken(bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("decodePageToken(%q) err = %v", bad, err)
		}
	}
}
