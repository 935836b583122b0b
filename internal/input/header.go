package input

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"unsafe"
)

// maxKeyLen bounds an idempotency key, per the IETF draft's advice and Stripe's limit.
const maxKeyLen = 255

// AppendIdempotencyKey parses an Idempotency-Key header value and appends the
// key to dst. The value is 1-255 visible ASCII characters (0x21-0x7E), or an
// RFC 8941 sf-string: double quotes around space and visible ASCII, with only
// \" and \\ escapes, unescaping to 1-255 characters. Surrounding SP/HTAB is
// trimmed. On error dst is returned unchanged.
func AppendIdempotencyKey(dst, h []byte) ([]byte, error) {
	h = trimSpace(h)
	n := len(dst)
	if len(h) == 0 {
		return dst, fail(ErrIdempotencyKey, "empty", nil)
	}
	if h[0] != '"' {
		for i, c := range h {
			if c < 0x21 || c > 0x7e {
				return dst, fail(ErrIdempotencyKey, "space, control or non-ASCII character at "+strconv.Itoa(i), h)
			}
		}
		if len(h) > maxKeyLen {
			return dst, fail(ErrIdempotencyKey, "longer than 255 characters", h)
		}
		return append(dst, h...), nil
	}
	if len(h) < 2 || h[len(h)-1] != '"' {
		return dst, fail(ErrIdempotencyKey, "unterminated quoted string", h)
	}
	for i := 1; i < len(h)-1; i++ {
		c := h[i]
		switch {
		case c < 0x20 || c > 0x7e:
			return dst[:n], fail(ErrIdempotencyKey, "control or non-ASCII character at "+strconv.Itoa(i), h)
		case c == '"':
			return dst[:n], fail(ErrIdempotencyKey, "unescaped quote at "+strconv.Itoa(i), h)
		case c == '\\':
			if i++; i == len(h)-1 || h[i] != '"' && h[i] != '\\' { // the closing quote is no escape
				return dst[:n], fail(ErrIdempotencyKey, `only \" and \\ escapes are allowed`, h)
			}
			c = h[i]
		}
		dst = append(dst, c)
	}
	switch k := len(dst) - n; {
	case k == 0:
		return dst, fail(ErrIdempotencyKey, "empty", nil)
	case k > maxKeyLen:
		return dst[:n], fail(ErrIdempotencyKey, "longer than 255 characters", h)
	}
	return dst, nil
}

// trimSpace trims optional whitespace (RFC 9110 OWS: SP and HTAB).
func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// ClientIP picks the client address. peer is the socket peer, xff the raw
// X-Forwarded-For header (possibly nil, garbage, or several headers joined by
// commas). Unless trusted(peer), the answer is peer. Otherwise xff is walked from
// the right, skipping hops that are trusted, and the first untrusted hop is the
// answer. An unparseable entry stops the walk at the last trusted hop, the one
// that handed us the garbage. If every hop is trusted the leftmost one wins.
// Entries may carry spaces and a port ("1.2.3.4:80", "[::1]:80"); empty
// entries are skipped (RFC 9110 list syntax); zones are garbage.
//
// IPv4-mapped IPv6 addresses are returned as IPv4, peer included, so that one
// client is one key for rate limiting whichever way it arrived.
func ClientIP(peer netip.Addr, xff []byte, trusted func(netip.Addr) bool) netip.Addr {
	last := peer.Unmap()
	if trusted == nil || !trusted(last) {
		return last
	}
	for end := len(xff); end > 0; {
		start := bytes.LastIndexByte(xff[:end], ',') + 1
		entry := trimSpace(xff[start:end])
		end = start - 1
		if len(entry) == 0 {
			continue
		}
		hop, ok := parseHop(entry)
		if !ok {
			return last
		}
		if !trusted(hop) {
			return hop
		}
		last = hop
	}
	return last
}

// parseHop parses one X-Forwarded-For entry: an address, "ipv4:port",
// "[ipv6]" or "[ipv6]:port".
func parseHop(b []byte) (netip.Addr, bool) {
	bracketed := b[0] == '['
	if bracketed {
		end := bytes.LastIndexByte(b, ']')
		if end < 0 || (end+1 < len(b) && !isPort(b[end+1:])) {
			return netip.Addr{}, false
		}
		b = b[1:end]
	} else if i := bytes.LastIndexByte(b, ':'); i >= 0 && bytes.LastIndexByte(b[:i], ':') < 0 {
		if !isPort(b[i:]) {
			return netip.Addr{}, false
		}
		b = b[:i]
	}
	if len(b) == 0 {
		return netip.Addr{}, false
	}
	// The string does not outlive the call: netip keeps it only in the error
	// we drop, and Addr holds no string. This keeps the hot path allocation-free.
	a, err := netip.ParseAddr(unsafe.String(&b[0], len(b)))
	if err != nil || a.Zone() != "" || (bracketed && !a.Is6()) {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// isPort reports whether b is ":" and a decimal port number.
func isPort(b []byte) bool {
	if len(b) < 2 || b[0] != ':' {
		return false
	}
	n := 0
	for _, c := range b[1:] {
		if c < '0' || c > '9' {
			return false
		}
		if n = n*10 + int(c-'0'); n > 65535 {
			return false
		}
	}
	return true
}

// Prefixes is a set of trusted proxy networks. The zero value is empty.
type Prefixes struct{ list []netip.Prefix }

// ParsePrefixes parses a comma-separated list of CIDRs ("10.0.0.0/8, ::1/128");
// a bare address means /32 or /128. Every bad entry is reported in one error.
func ParsePrefixes(s string) (Prefixes, error) {
	var p Prefixes
	var bad []string
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.Trim(entry, " \t")
		if entry == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(entry)
		if !strings.Contains(entry, "/") {
			var a netip.Addr
			if a, err = netip.ParseAddr(entry); err == nil && a.Zone() == "" {
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || !pfx.IsValid() {
			bad = append(bad, strconv.Quote(entry))
			continue
		}
		// Contains unmaps addresses, so store ::ffff:a.b.c.d/n as a.b.c.d/(n-96).
		if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
		}
		p.list = append(p.list, pfx.Masked())
	}
	if bad != nil {
		return Prefixes{}, &Error{Kind: ErrPrefix, Detail: strings.Join(bad, ", "), Offset: -1}
	}
	return p, nil
}

// Contains reports whether a is in one of the prefixes. IPv4-mapped IPv6
// addresses count as IPv4 and zones are ignored.
func (p Prefixes) Contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, pfx := range p.list {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// String lists the prefixes in the form ParsePrefixes reads.
func (p Prefixes) String() string {
	s := make([]string, len(p.list))
	for i, pfx := range p.list {
		s[i] = pfx.String()
	}
	return strings.Join(s, ", ")
}
