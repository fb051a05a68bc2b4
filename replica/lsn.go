package replica

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in PostgreSQL's write-ahead log (pg_lsn), in bytes.
type LSN uint64

// ParseLSN parses the text form of a pg_lsn, such as "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if ok {
		h, err1 := strconv.ParseUint(hi, 16, 32)
		l, err2 := strconv.ParseUint(lo, 16, 32)
		if err1 == nil && err2 == nil {
			return LSN(h<<32 | l), nil
		}
	}
	return 0, fmt.Errorf("replica: %q is not a WAL position (want the pg_lsn form, such as 16/B374D848)", s)
}

// String returns the pg_lsn text form, such as "16/B374D848".
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }

// WAL page layout: PostgreSQL's page size (fixed at build time, 8 kB unless built
// otherwise) and page headers.
const (
	walPageSize        = 8192
	walShortPageHeader = 24 // SizeOfXLogShortPHD
	walLongPageHeader  = 40 // SizeOfXLogLongPHD, at the start of a segment
)

// replayTarget returns the replay position a standby must reach to hold everything up
// to the insert position pos (what pg_current_wal_insert_lsn returned) on a server with
// WAL segments of segSize bytes. A position just past a page header means the log ended
// at the page boundary, which is where a standby's replay position stops: the header's
// bytes are no record of their own.
func replayTarget(pos LSN, segSize uint64) LSN {
	switch {
	case segSize > 0 && uint64(pos)%segSize == walLongPageHeader:
		return pos - walLongPageHeader
	case pos%walPageSize == walShortPageHeader:
		return pos - walShortPageHeader
	}
	return pos
}
