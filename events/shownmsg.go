package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"time"

	lr "github.com/liverecall/liverecall"
)

// DefaultShownTopic is where the impression producer writes, next to each
// page's impressions, what the already-shown filter needs of it: the user,
// the time and the streamers shown, about 200 bytes against the page's
// 7 KB with its feature vectors. Every replica reads every partition of it
// (ShownConsumer), so a replica reads the fleet's shown records, not the
// fleet's impressions: at 2,000 req/s the impressions it read back were a
// third of a replica's allocations, and a fleet of N replicas would read N
// times as many. The sink reads the impressions topic, not this one.
const DefaultShownTopic = "liverecall.shown"

// ShownRecord is one message of the shown topic: streamers shown to a
// user at a time (one page, or the part of a page with one user and time).
type ShownRecord struct {
	UserID    lr.UserID
	ShownAt   time.Time
	Streamers []lr.StreamerID
}

// AppendShownRecord appends the message value of r to dst:
// {"user_id":7,"shown_at":"2026-12-07T01:02:03.456Z","streamer_ids":[3,1]}.
// It fails with EINVALID for a shown_at outside years 0-9999.
func AppendShownRecord(dst []byte, r ShownRecord) ([]byte, error) {
	dst = append(dst, `{"user_id":`...)
	dst = strconv.AppendInt(dst, int64(r.UserID), 10)
	dst = append(dst, `,"shown_at":"`...)
	dst, err := r.ShownAt.AppendText(dst)
	if err != nil {
		return nil, lr.Errorf(lr.EINVALID, "shown record: shown_at: %v", err)
	}
	dst = append(dst, `","streamer_ids":[`...)
	for i, id := range r.Streamers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, int64(id), 10)
	}
	return append(dst, "]}"...), nil
}

// shownRecords calls fn with the shown record of each run of imps with one
// user and one time (a page is one run). ids is reused between calls.
func shownRecords(imps []lr.Impression, ids []lr.StreamerID, fn func(ShownRecord)) []lr.StreamerID {
	ids = ids[:0]
	for i := range imps {
		ids = append(ids, imps[i].StreamerID)
		if i+1 == len(imps) || imps[i+1].UserID != imps[i].UserID || !imps[i+1].ShownAt.Equal(imps[i].ShownAt) {
			fn(ShownRecord{UserID: imps[i].UserID, ShownAt: imps[i].ShownAt, Streamers: ids})
			ids = ids[:0]
		}
	}
	return ids
}

// DecodeShownRecord parses a shown topic message value. It fails with
// EINVALID, naming the problem, for anything but one JSON object with
// exactly the fields user_id (a positive integer), shown_at (RFC 3339) and
// streamer_ids (a non-empty array of positive integers).
func DecodeShownRecord(b []byte) (ShownRecord, error) {
	var raw struct {
		UserID    *int64  `json:"user_id"`
		ShownAt   *string `json:"shown_at"`
		Streamers []int64 `json:"streamer_ids"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return ShownRecord{}, lr.Errorf(lr.EINVALID, "shown record: empty message")
		}
		return ShownRecord{}, lr.Errorf(lr.EINVALID, "shown record: %v", err)
	}
	if dec.More() {
		return ShownRecord{}, lr.Errorf(lr.EINVALID, "shown record: more than one JSON value")
	}
	switch {
	case raw.UserID == nil:
		return ShownRecord{}, lr.Errorf(lr.EINVALID, "shown record: no user_id")
	case *raw.UserID <= 0:
		return ShownRecord{}, lr.Errorf(lr.EINVALID, "shown record: user_id %d is not positive", *raw.UserID)
	case raw.ShownAt == nil:
		return ShownRecord{}, lr.Errorf(lr.EINVALID, "shown record: no shown_at")
	case len(raw.Streamers) == 0:
		return ShownRecord{}, lr.Errorf(lr.EINVALID, "shown record: no streamer_ids")
	}
	at, err := time.Parse(time.RFC3339Nano, *raw.ShownAt)
	if err != nil {
		return ShownRecord{}, lr.Errorf(lr.EINVALID, "shown record: shown_at %q is not an RFC 3339 time", *raw.ShownAt)
	}
	r := ShownRecord{UserID: lr.UserID(*raw.UserID), ShownAt: at, Streamers: make([]lr.StreamerID, len(raw.Streamers))}
	for i, id := range raw.Streamers {
		if id <= 0 {
			return ShownRecord{}, lr.Errorf(lr.EINVALID, "shown record: streamer_ids[%d] = %d is not a streamer id", i, id)
		}
		r.Streamers[i] = lr.StreamerID(id)
	}
	return r, nil
}
