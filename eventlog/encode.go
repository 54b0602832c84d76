package eventlog

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends e's line of the event log, without the newline, to
// dst: the bytes json.Marshal(e) returns, written without going through
// encoding/json for the header and the common field types. On an error
// (a field JSON cannot write), dst is returned as it was.
func AppendJSON(dst []byte, e Event) ([]byte, error) {
	start := len(dst)
	b := append(dst, `{"ts":"`...)
	b = e.TS.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","node":`...)
	b = appendString(b, e.Node)
	b = append(b, `,"inc":`...)
	b = strconv.AppendUint(b, e.Inc, 10)
	b = append(b, `,"lc":`...)
	b = strconv.AppendUint(b, e.LC, 10)
	b = append(b, `,"ev":`...)
	b = appendString(b, e.Ev)
	var arr [16]string
	keys := arr[:0]
	for k := range e.Fields {
		if !reserved[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = append(b, ',')
		b = appendString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, e.Fields[k]); err != nil {
			return dst[:start], fmt.Errorf("eventlog: field %q: %w", k, err)
		}
	}
	return append(b, '}'), nil
}

// appendValue appends v as json.Marshal writes it.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case []int:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, n := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
		return append(b, ']'), nil
	case []string:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, s := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		return append(b, ']'), nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

// appendString appends s quoted as json.Marshal quotes it (HTML-safe).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(s) // strings always marshal
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
