package chat

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits on what a message carries.
const (
	// MaxContentRunes bounds a message's text, counted after trimming.
	MaxContentRunes = 4000
	// MaxMetadataPairs, MaxMetadataKey and MaxMetadataValue bound the
	// client's key/value pairs one by one, MaxMetadataBytes all together.
	MaxMetadataPairs = 16
	MaxMetadataKey   = 64
	MaxMetadataValue = 1024
	MaxMetadataBytes = 8 << 10
	// maxTermRunes cuts very long "words" (URLs, base64) so the index stays
	// small; a query term is cut the same way and still matches.
	maxTermRunes = 64
	// maxTerms bounds the distinct terms indexed per message.
	maxTerms = 256
	// maxMentions bounds the usernames a message.sent event carries.
	maxMentions = 50
	// maxNameRunes and maxDescriptionRunes bound channel texts.
	maxNameRunes        = 80
	maxDescriptionRunes = 500
)

// Terms returns the search terms of a text: accents removed (NFD, then the
// combining marks dropped), lower-cased, split on everything that is not a
// letter or a digit, without duplicates, in order of first appearance.
// Words of a single character are dropped: they match too much to be worth
// indexing. Query strings go through the same function, so "Crème BRÛLÉE"
// finds "creme brulee".
func Terms(text string) []string {
	var (
		terms []string
		seen  = map[string]bool{}
		word  strings.Builder
		n     int // runes in word
	)
	flush := func() {
		if n >= 2 && len(terms) < maxTerms {
			w := word.String()
			if !seen[w] {
				seen[w] = true
				terms = append(terms, w)
			}
		}
		word.Reset()
		n = 0
	}
	for _, r := range norm.NFD.String(text) {
		switch {
		case unicode.Is(unicode.Mn, r):
			// A combining mark (the accent of "é" after NFD): part of the
			// word, but not of the term.
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if n < maxTermRunes {
				word.WriteRune(unicode.ToLower(r))
			}
			n++
		default:
			flush()
		}
	}
	flush()
	return terms
}

// Mentions returns the lower-cased usernames mentioned in text as @name,
// without duplicates. A username is what the user service allows (3-32 of
// [a-z0-9_.], any case); "bob@example.com" is an address, not a mention, and
// a trailing dot ends the sentence rather than the name.
func Mentions(text string) []string {
	var out []string
	seen := map[string]bool{}
	for i := 0; i < len(text) && len(out) < maxMentions; i++ {
		if text[i] != '@' || (i > 0 && (usernameByte(text[i-1]) || text[i-1] == '@')) {
			continue
		}
		j := i + 1
		for j < len(text) && usernameByte(text[j]) {
			j++
		}
		name := strings.ToLower(strings.TrimRight(text[i+1:j], "."))
		if len(name) >= 3 && len(name) <= 32 && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
		i = j - 1
	}
	return out
}

func usernameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '.'
}

// cleanContent trims the text and checks its length: required unless the
// message has an attachment.
func cleanContent(content string, required bool) (string, error) {
	if !utf8.ValidString(content) {
		return "", fmt.Errorf("%w: content is not valid UTF-8", ErrInvalidArgument)
	}
	c := strings.TrimSpace(content)
	n := utf8.RuneCountInString(c)
	switch {
	case n == 0 && required:
		return "", fmt.Errorf("%w: content is empty", ErrInvalidArgument)
	case n > MaxContentRunes:
		return "", fmt.Errorf("%w: content has %d characters, at most %d allowed", ErrInvalidArgument, n, MaxContentRunes)
	}
	return c, nil
}

// checkMetadata enforces the metadata bounds documented in the API.
func checkMetadata(md map[string]string) error {
	if len(md) > MaxMetadataPairs {
		return fmt.Errorf("%w: metadata has %d pairs, at most %d allowed", ErrInvalidArgument, len(md), MaxMetadataPairs)
	}
	total := 0
	for k, v := range md {
		if k == "" || len(k) > MaxMetadataKey || !validMetadataKey(k) {
			return fmt.Errorf("%w: metadata key %q must be 1-%d characters of [A-Za-z0-9_.:-]", ErrInvalidArgument, k, MaxMetadataKey)
		}
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > MaxMetadataValue {
			return fmt.Errorf("%w: metadata value of %q must be valid UTF-8 of at most %d characters", ErrInvalidArgument, k, MaxMetadataValue)
		}
		total += len(k) + len(v)
	}
	if total > MaxMetadataBytes {
		return fmt.Errorf("%w: metadata is %d bytes, at most %d allowed", ErrInvalidArgument, total, MaxMetadataBytes)
	}
	return nil
}

func validMetadataKey(k string) bool {
	for _, r := range k {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.:-", r)
		if !ok {
			return false
		}
	}
	return true
}

// validID accepts the ids the API does: 1-64 of [A-Za-z0-9_-].
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

func checkID(what, id string) error {
	if !validID(id) {
		return fmt.Errorf("%w: %s %q must be 1-64 characters of [A-Za-z0-9_-]", ErrInvalidArgument, what, id)
	}
	return nil
}

// hasControl reports a control character, which names and descriptions
// (shown in lists) must not contain; descriptions may contain newlines.
func hasControl(s string, allowNewline bool) bool {
	for _, r := range s {
		if unicode.IsControl(r) && !(allowNewline && (r == '\n' || r == '\r' || r == '\t')) {
			return true
		}
	}
	return false
}
