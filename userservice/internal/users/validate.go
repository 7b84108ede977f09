package users

import (
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Input limits. Lengths are in characters (Unicode code points), except
// the email address, whose limit (RFC 5321) is in bytes; emails are ASCII.
const (
	UsernameMinLen      = 3
	UsernameMaxLen      = 32
	PasswordMinLen      = 8
	PasswordMaxLen      = 128
	DisplayNameMaxLen   = 64
	StatusMessageMaxLen = 140
	EmailMaxLen         = 254
	AvatarURLMaxLen     = 2048
	SearchQueryMaxLen   = 100
	// idMaxLen and the id pattern match the API's rule for ids.
	idMaxLen = 64
)

var (
	// usernameRE is checked on the input before lower-casing: lower-casing
	// first would let the Kelvin sign (U+212A) become a "k".
	usernameRE = regexp.MustCompile(`^[A-Za-z0-9_.]+$`)
	// emailRE is the WHATWG (HTML5) address syntax, the same rule as the
	// API's protovalidate `email` constraint: ASCII only.
	emailRE = regexp.MustCompile(`^[a-zA-Z0-9.!#$%&'*+/=?^_` + "`" + `{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)
	idRE    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// NormalizeUsername checks a username (3-32 characters of [A-Za-z0-9_.])
// and returns it lower-cased: usernames are unique regardless of case.
func NormalizeUsername(s string) (string, error) {
	switch n := len(s); {
	case n < UsernameMinLen:
		return "", invalid("username", "must be at least 3 characters")
	case n > UsernameMaxLen:
		return "", invalid("username", "must be at most 32 characters")
	case !usernameRE.MatchString(s):
		return "", invalid("username", "may only contain letters a-z, digits, '_' and '.'")
	}
	return strings.ToLower(s), nil
}

// NormalizeEmail checks an email address and returns its canonical form:
// trimmed and entirely lower-cased. Lower-casing the local part too is a
// deliberate choice: no mainstream provider treats it case-sensitively, and
// it stops "Bob@x.org" and "bob@x.org" from being two accounts.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", invalid("email", "is required")
	case len(s) > EmailMaxLen:
		return "", invalid("email", "must be at most 254 characters")
	case !emailRE.MatchString(s):
		return "", invalid("email", "is not a valid email address")
	}
	local, _, _ := strings.Cut(s, "@")
	if len(local) > 64 {
		return "", invalid("email", "is not a valid email address")
	}
	// emailRE admits ASCII only, so this cannot map a Unicode look-alike
	// (such as the Kelvin sign) onto an ASCII letter.
	return strings.ToLower(s), nil
}

// normalizeLogin tells a username from an email address and normalises it.
func normalizeLogin(s string) (login string, isEmail bool, err error) {
	if strings.Contains(s, "@") {
		e, err := NormalizeEmail(s)
		if err != nil {
			return "", false, invalid("login", "must be a username or an email address")
		}
		return e, true, nil
	}
	u, err := NormalizeUsername(s)
	if err != nil {
		return "", false, invalid("login", "must be a username or an email address")
	}
	return u, false, nil
}

// normalizePassword returns the form a password is hashed in: NFKC, so a
// password typed on two keyboards that compose characters differently is
// the same password (NIST SP 800-63B 5.1.1.2).
func normalizePassword(s string) string { return norm.NFKC.String(s) }

// ValidatePassword checks the password policy: 8-128 characters.
func ValidatePassword(s string) error {
	if !utf8.ValidString(s) {
		return invalid("password", "is not valid UTF-8")
	}
	switch n := utf8.RuneCountInString(s); {
	case n < PasswordMinLen:
		return invalid("password", "must be at least 8 characters")
	case n > PasswordMaxLen:
		return invalid("password", "must be at most 128 characters")
	}
	return nil
}

// NormalizeDisplayName trims and NFC-normalises a display name and checks
// it: 1-64 characters, no control, format (bidi overrides, zero-width
// characters), separator-line, private-use or unassigned characters.
func NormalizeDisplayName(s string) (string, error) {
	return normalizeText("display_name", s, 1, DisplayNameMaxLen)
}

// NormalizeStatusMessage is NormalizeDisplayName's rule for the status
// line: 0-140 characters (empty clears it).
func NormalizeStatusMessage(s string) (string, error) {
	return normalizeText("status_message", s, 0, StatusMessageMaxLen)
}

func normalizeText(field, s string, minLen, maxLen int) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid(field, "is not valid UTF-8")
	}
	for _, r := range s {
		if bad := disallowedRune(r); bad != "" {
			return "", invalid(field, "must not contain "+bad)
		}
	}
	s = norm.NFC.String(strings.TrimSpace(s))
	switch n := utf8.RuneCountInString(s); {
	case n < minLen:
		return "", invalid(field, "must not be empty")
	case n > maxLen:
		return "", invalid(field, "is too long")
	}
	return s, nil
}

// disallowedRune names the class of r if r must not appear in user-visible
// text, else "". Format characters (Cf) are the invisible ones used to
// spoof text: bidi overrides and isolates, zero-width spaces and joiners,
// the byte-order mark.
func disallowedRune(r rune) string {
	switch {
	case r == utf8.RuneError:
		return "invalid characters"
	case unicode.Is(unicode.Cc, r):
		return "control characters"
	case unicode.Is(unicode.Cf, r):
		return "invisible formatting characters"
	case unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
		return "line breaks"
	case unicode.Is(unicode.Co, r), unicode.Is(unicode.Cs, r):
		return "private-use characters"
	case !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Zs):
		return "unassigned characters"
	}
	return ""
}

// normalizeAvatarURL accepts an empty string (no avatar), an absolute https
// URL, or a path on this site under pathPrefix (an attachment URL such as
// /v1/attachments/<id>). Plain http is refused: it would make clients load
// mixed content and leak the viewer's address in clear.
func normalizeAvatarURL(s, pathPrefix string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > AvatarURLMaxLen {
		return "", invalid("avatar_url", "is too long")
	}
	for _, r := range s {
		// A URL has no business containing white space, control
		// characters or non-ASCII (those must be percent-encoded).
		if r <= ' ' || r >= 0x7f || r == '\\' {
			return "", invalid("avatar_url", "contains characters a URL cannot have")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", invalid("avatar_url", "is not a valid URL")
	}
	switch {
	case u.Scheme == "https":
		if u.Host == "" || u.User != nil || u.Opaque != "" {
			return "", invalid("avatar_url", "must be an https URL with a host and no credentials")
		}
		return u.String(), nil
	case u.Scheme == "" && u.Host == "" && !strings.HasPrefix(s, "//"):
		clean := u.EscapedPath()
		if !strings.HasPrefix(clean, pathPrefix) || len(clean) == len(pathPrefix) ||
			strings.Contains(clean, "/../") || strings.HasSuffix(clean, "/..") || strings.Contains(clean, "//") {
			return "", invalid("avatar_url", "a relative URL must be an attachment URL ("+pathPrefix+"...)")
		}
		return s, nil
	default:
		return "", invalid("avatar_url", "must be an https URL or an attachment URL")
	}
}

// SearchKey is the form display names and search queries are compared in:
// NFKC (so compatibility variants such as full-width letters or ligatures
// match their plain forms), lower-cased, trimmed.
func SearchKey(s string) string {
	return strings.ToLower(norm.NFKC.String(strings.TrimSpace(s)))
}

// normalizeSearchQuery checks a search query and returns its SearchKey.
func normalizeSearchQuery(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid("query", "is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) {
			return "", invalid("query", "must not contain control or formatting characters")
		}
	}
	if utf8.RuneCountInString(s) > SearchQueryMaxLen {
		return "", invalid("query", "is too long")
	}
	k := SearchKey(s)
	if k == "" {
		return "", invalid("query", "must not be empty")
	}
	return k, nil
}

// validateUserID checks an id received from a client.
func validateUserID(field, id string) error {
	if id == "" || len(id) > idMaxLen || !idRE.MatchString(id) {
		return invalid(field, "is not a valid user id")
	}
	return nil
}
