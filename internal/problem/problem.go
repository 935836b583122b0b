// Package problem writes RFC 9457 problem details (application/problem+json).
package problem

import (
	"strconv"

	"github.com/sgeplatform/sge/internal/jsonw"
)

// ContentType is the media type of a problem body.
const ContentType = "application/problem+json"

// Append appends {"type","title","status","detail"} to dst. slug names the
// problem type as "urn:sge:problem:<slug>"; detail must not carry more than a
// short prefix of client input.
func Append(dst []byte, status int, slug, title, detail string) []byte {
	dst = append(dst, `{"type":"urn:sge:problem:`...)
	dst = append(dst, slug...)
	dst = append(dst, `","title":`...)
	dst = jsonw.AppendString(dst, title)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, `,"detail":`...)
	dst = jsonw.AppendString(dst, detail)
	return append(dst, '}')
}
