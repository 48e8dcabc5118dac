package fakeollama

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// ModelInfo is one entry of GET /api/tags.
type ModelInfo struct {
	Name       string       `json:"name"`
	Model      string       `json:"model"`
	ModifiedAt time.Time    `json:"modified_at"`
	Size       int64        `json:"size"`
	Digest     string       `json:"digest"`
	Details    ModelDetails `json:"details"`
}

// ModelDetails is ModelInfo.details.
type ModelDetails struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

// TagsResponse is the body of GET /api/tags.
type TagsResponse struct {
	Models []ModelInfo `json:"models"`
}

var modified = time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)

func (s *Server) tags() TagsResponse {
	out := TagsResponse{Models: []ModelInfo{}}
	for _, m := range s.models {
		sum := sha256.Sum256([]byte(m))
		family := m[:strings.IndexAny(m+":", ":.0123456789")]
		if family == "" {
			family = "unknown"
		}
		info := ModelInfo{
			Name: m, Model: m, ModifiedAt: modified, Size: 4_920_753_328, Digest: hex.EncodeToString(sum[:]),
			Details: ModelDetails{Format: "gguf", Family: family, Families: []string{family}, ParameterSize: "8.0B", QuantizationLevel: "Q4_K_M"},
		}
		if strings.HasPrefix(m, "all-minilm") {
			info.Size, info.Details.Family, info.Details.Families = 45_960_996, "bert", []string{"bert"}
			info.Details.ParameterSize, info.Details.QuantizationLevel = "23M", "F16"
		}
		out.Models = append(out.Models, info)
	}
	return out
}
