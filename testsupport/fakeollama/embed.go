package fakeollama

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
)

// EmbedResponse is the body of POST /api/embed.
type EmbedResponse struct {
	Model           string      `json:"model"`
	Embeddings      [][]float32 `json:"embeddings"`
	TotalDuration   int64       `json:"total_duration"`
	LoadDuration    int64       `json:"load_duration"`
	PromptEvalCount int         `json:"prompt_eval_count"`
}

type embedRequest struct {
	Model      string          `json:"model"`
	Input      json.RawMessage `json:"input"`
	Dimensions int             `json:"dimensions"`
}

func nativeError(w http.ResponseWriter, status int, msg string) bool {
	writeJSON(w, status, map[string]string{"error": msg})
	return true
}

func (s *Server) embed(w http.ResponseWriter, r *http.Request, body []byte) bool {
	var req embedRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nativeError(w, http.StatusBadRequest, err.Error())
	}
	if req.Model == "" {
		return nativeError(w, http.StatusBadRequest, "model is required")
	}
	var inputs []string
	switch {
	case len(req.Input) == 0 || string(req.Input) == "null":
	case json.Unmarshal(req.Input, new(string)) == nil:
		var one string
		_ = json.Unmarshal(req.Input, &one)
		if one != "" {
			inputs = []string{one}
		}
	case json.Unmarshal(req.Input, &inputs) == nil:
	default:
		return nativeError(w, http.StatusBadRequest, "invalid input type")
	}
	if req.Dimensions < 0 || req.Dimensions > EmbeddingDims {
		return nativeError(w, http.StatusBadRequest, fmt.Sprintf("invalid dimensions: %d", req.Dimensions))
	}
	_, delay, _ := s.faults()
	if !sleepCtx(r.Context(), delay) {
		return false
	}
	if !s.served[normalize(req.Model)] {
		return nativeError(w, http.StatusNotFound, fmt.Sprintf("model %q not found, try pulling it first", req.Model))
	}
	resp := EmbedResponse{Model: req.Model, Embeddings: [][]float32{}, LoadDuration: 1_019_500}
	for _, in := range inputs {
		v := Embed(in)
		if req.Dimensions > 0 {
			v = renormalize(v[:req.Dimensions])
		}
		resp.Embeddings = append(resp.Embeddings, v)
		resp.PromptEvalCount += countTokens(in) + 2 // [CLS] and [SEP]
	}
	resp.TotalDuration = resp.LoadDuration + int64(resp.PromptEvalCount)*150_000
	writeJSON(w, http.StatusOK, resp)
	return true
}

// Embed returns the fake embedding of text: a signed feature hash of its
// lowercased word unigrams (weight 1) and bigrams (weight 0.5) into
// EmbeddingDims dimensions, L2-normalised. Text without words gives the zero
// vector.
func Embed(text string) []float32 {
	v := make([]float64, EmbeddingDims)
	add := func(feature string, weight float64) {
		h := fnv.New64a()
		h.Write([]byte(feature))
		x := h.Sum64()
		idx := x % EmbeddingDims
		if x>>63 == 1 {
			weight = -weight
		}
		v[idx] += weight
	}
	ws := words(text)
	for i, w := range ws {
		add("u:"+w, 1)
		if i > 0 {
			add("b:"+ws[i-1]+" "+w, 0.5)
		}
	}
	out := make([]float32, EmbeddingDims)
	for i, x := range v {
		out[i] = float32(x)
	}
	return renormalize(out)
}

func renormalize(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if sum == 0 {
		return out
	}
	n := math.Sqrt(sum)
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out
}

// Cosine returns the cosine similarity of two equal-length vectors (0 if
// either is zero).
func Cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}
