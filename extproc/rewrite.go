package extproc

import (
	"encoding/json"
	"errors"
	"fmt"
)

// replaceModel returns body with the value of every top-level "model"
// member replaced by model, every other byte unchanged. body has already
// been parsed by anthropic.ParseRequest, so it is a valid JSON object whose
// model is a string; the scanner still checks what it relies on.
func replaceModel(body []byte, model string) ([]byte, error) {
	quoted, err := json.Marshal(model)
	if err != nil {
		return nil, fmt.Errorf("extproc: model rewrite: %w", err)
	}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, errors.New("extproc: model rewrite: body is not a JSON object")
	}
	out := make([]byte, 0, len(body)+len(quoted))
	last := 0 // body[last:] is not copied yet
	found := false
	i++
	for {
		i = skipSpace(body, i)
		if i < len(body) && body[i] == '}' {
			break
		}
		if i >= len(body) || body[i] != '"' {
			return nil, errors.New("extproc: model rewrite: malformed object")
		}
		keyStart := i
		i = skipString(body, i)
		key := body[keyStart:i]
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != ':' {
			return nil, errors.New("extproc: model rewrite: malformed object")
		}
		i = skipSpace(body, i+1)
		valStart := i
		i = skipValue(body, i)
		if i < 0 {
			return nil, errors.New("extproc: model rewrite: malformed value")
		}
		if string(key) == `"model"` {
			if body[valStart] != '"' {
				return nil, errors.New("extproc: model rewrite: model is not a string")
			}
			out = append(out, body[last:valStart]...)
			out = append(out, quoted...)
			last, found = i, true
		}
		i = skipSpace(body, i)
		if i < len(body) && body[i] == ',' {
			i++
		}
	}
	if !found {
		return nil, errors.New("extproc: model rewrite: no model member")
	}
	return append(out, body[last:]...), nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"',
// or len(b) when it is not closed.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the JSON value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	// number, true, false, null
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}
