package chat

import (
	"context"
	"fmt"
	"time"
)

// maxQueryTerms bounds a search's terms: each is one more $all operand.
const maxQueryTerms = 16

// SearchRequest is a SearchMessages call.
type SearchRequest struct {
	Query string
	// ChannelID restricts the search to one channel the caller may read
	// (public channels included); empty searches the caller's channels.
	ChannelID string
	PageSize  int
	PageToken string
}

type searchToken struct {
	CreatedAt int64  `json:"t"` // unix ms
	Seq       int64  `json:"s"`
	ID        string `json:"i"`
}

// SearchMessages finds the messages containing every word of the query
// (accents and case ignored), newest first. Without a channel it searches
// the channels the caller is a member of; a public channel the caller has
// not joined is searched only when named.
func (s *Service) SearchMessages(ctx context.Context, c Caller, r SearchRequest) ([]Message, string, error) {
	if err := requireUser(c); err != nil {
		return nil, "", err
	}
	terms := Terms(r.Query)
	switch {
	case len(terms) == 0:
		return nil, "", fmt.Errorf("%w: the query has no word of two or more letters or digits", ErrInvalidArgument)
	case len(terms) > maxQueryTerms:
		return nil, "", fmt.Errorf("%w: at most %d words per query", ErrInvalidArgument, maxQueryTerms)
	}
	size := pageSize(r.PageSize)
	q := SearchQuery{Terms: terms, Limit: size + 1}
	if r.PageToken != "" {
		var tok searchToken
		if err := decodeToken(r.PageToken, &tok); err != nil {
			return nil, "", err
		}
		q.After = &SearchCursor{CreatedAt: time.UnixMilli(tok.CreatedAt).UTC(), Seq: tok.Seq, ID: tok.ID}
	}
	if r.ChannelID != "" {
		ch, _, err := s.requireReader(ctx, c, r.ChannelID)
		if err != nil {
			return nil, "", err
		}
		q.ChannelIDs = []string{ch.ID}
	} else {
		ids, err := s.channels.MemberChannelIDs(ctx, c.UserID)
		if err != nil {
			return nil, "", fmt.Errorf("list the caller's channels: %w", err)
		}
		if len(ids) == 0 {
			return nil, "", nil
		}
		q.ChannelIDs = ids
	}
	msgs, err := s.messages.SearchMessages(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("search messages: %w", err)
	}
	next := ""
	if len(msgs) > size {
		msgs = msgs[:size]
		last := msgs[size-1]
		next, err = encodeToken(searchToken{CreatedAt: last.CreatedAt.UnixMilli(), Seq: last.Seq, ID: last.ID})
		if err != nil {
			return nil, "", err
		}
	}
	return msgs, next, nil
}
