package anthropic

import (
	"bytes"
	"encoding/json"
)

// StreamReader follows a Messages SSE stream as it passes through, chunk by
// chunk, and keeps its usage. Chunks may split lines and events anywhere.
// It only reads: the bytes go on to the caller unchanged.
//
// Per the streaming docs: message_start carries the initial usage,
// message_delta carries cumulative usage (one or more of them), an error
// event can arrive after a 200, ping and unknown events are ignored.
type StreamReader struct {
	line    []byte // an unfinished line carried to the next chunk
	event   []byte // the current event's name
	data    []byte // the current event's data lines, joined by '\n'
	skip    bool   // the current event's data exceeded maxEventBytes
	discard bool   // drop the rest of an over-long line
	prevCR  bool   // the previous chunk ended in '\r'
	usage   Usage
	model   string
	stop    string
	err     *Error
	done    bool
	events  int
	badJSON int
}

// maxEventBytes bounds one event's data; Messages events are small (a
// content delta), so anything larger is treated as broken and skipped.
const maxEventBytes = 1 << 20

// Write feeds the next chunk of the stream. It never fails: malformed
// events are counted (Malformed) and skipped.
func (s *StreamReader) Write(p []byte) {
	for len(p) > 0 {
		if s.prevCR {
			s.prevCR = false
			if p[0] == '\n' { // the '\n' of a "\r\n" split across chunks
				p = p[1:]
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			if !s.discard {
				if len(s.line)+len(p) > maxEventBytes {
					s.discard, s.skip = true, true
					s.line = s.line[:0]
				} else {
					s.line = append(s.line, p...)
				}
			}
			return
		}
		eol := p[i]
		var line []byte
		switch {
		case s.discard: // the end of an over-long line: dropped
		case len(s.line) > 0:
			s.line = append(s.line, p[:i]...)
			line = s.line
		default:
			line = p[:i]
		}
		p = p[i+1:]
		if eol == '\r' {
			if len(p) == 0 {
				s.prevCR = true
			} else if p[0] == '\n' {
				p = p[1:]
			}
		}
		if s.discard {
			s.discard = false
		} else {
			s.processLine(line)
		}
		s.line = s.line[:0]
	}
}

func (s *StreamReader) processLine(line []byte) {
	if len(line) == 0 {
		s.dispatch()
		return
	}
	if line[0] == ':' { // comment
		return
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "event":
		s.event = append(s.event[:0], value...)
	case "data":
		if s.skip {
			return
		}
		if len(s.data)+len(value)+1 > maxEventBytes {
			s.skip = true
			return
		}
		if len(s.data) > 0 {
			s.data = append(s.data, '\n')
		}
		s.data = append(s.data, value...)
	}
}

type wireEvent struct {
	Type    string `json:"type"`
	Message *struct {
		Model string     `json:"model"`
		Usage *wireUsage `json:"usage"`
	} `json:"message"`
	Delta *struct {
		StopReason string `json:"stop_reason"`
	} `json:"delta"`
	Usage *wireUsage `json:"usage"`
	Error *Error     `json:"error"`
}

func (s *StreamReader) dispatch() {
	defer func() {
		s.event, s.data, s.skip = s.event[:0], s.data[:0], false
	}()
	if s.skip {
		s.badJSON++
		return
	}
	if len(s.data) == 0 {
		return
	}
	s.events++
	switch string(s.event) {
	case "message_start", "message_delta", "message_stop", "error", "":
	default:
		return // content deltas, pings, unknown events: nothing to learn
	}
	var ev wireEvent
	if err := json.Unmarshal(s.data, &ev); err != nil {
		s.badJSON++
		return
	}
	switch ev.Type {
	case "message_start":
		if ev.Message != nil {
			s.model = ev.Message.Model
			ev.Message.Usage.mergeInto(&s.usage)
		}
	case "message_delta":
		ev.Usage.mergeInto(&s.usage)
		if ev.Delta != nil && ev.Delta.StopReason != "" {
			s.stop = ev.Delta.StopReason
		}
	case "message_stop":
		s.done = true
	case "error":
		if ev.Error != nil {
			s.err = ev.Error
		} else {
			s.err = &Error{Type: APIError, Message: "error event without error"}
		}
	}
}

// Usage is the usage read so far (cumulative).
func (s *StreamReader) Usage() Usage { return s.usage }

// Model is the model named by message_start.
func (s *StreamReader) Model() string { return s.model }

// StopReason is the last stop_reason a message_delta carried.
func (s *StreamReader) StopReason() string { return s.stop }

// Err is the error event the stream carried, if any.
func (s *StreamReader) Err() *Error { return s.err }

// Done reports whether message_stop was seen.
func (s *StreamReader) Done() bool { return s.done }

// Events counts dispatched events with data.
func (s *StreamReader) Events() int { return s.events }

// Malformed counts events whose data was not JSON or was too large.
func (s *StreamReader) Malformed() int { return s.badJSON }
