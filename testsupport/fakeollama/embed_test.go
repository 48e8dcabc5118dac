package fakeollama

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestEmbedEndpoint(t *testing.T) {
	ts := start(t, New(Config{}))
	tests := []struct {
		name, body string
		status     int
		wantErr    string
		wantN      int
		wantCount  int
	}{
		{"string input", `{"model":"all-minilm","input":"Hello, world!"}`, 200, "", 1, 4 + 2},
		{"list input", `{"model":"all-minilm:latest","input":["a b","c"]}`, 200, "", 2, 2 + 2 + 1 + 2},
		{"empty string", `{"model":"all-minilm","input":""}`, 200, "", 0, 0},
		{"no input", `{"model":"all-minilm"}`, 200, "", 0, 0},
		{"missing model", `{"input":"x"}`, 400, "model is required", 0, 0},
		{"unknown model", `{"model":"nomic-embed-text","input":"x"}`, 404, `model "nomic-embed-text" not found, try pulling it first`, 0, 0},
		{"bad input type", `{"model":"all-minilm","input":5}`, 400, "invalid input type", 0, 0},
		{"malformed", `{"model"`, 400, "unexpected end of JSON input", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, ts, "POST", "/api/embed", tt.body, nil)
			if r.status != tt.status {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if tt.wantErr != "" {
				want, _ := json.Marshal(map[string]string{"error": tt.wantErr})
				if string(r.body) != string(want) {
					t.Errorf("body %s, want %s", r.body, want)
				}
				return
			}
			var raw map[string]json.RawMessage
			_ = json.Unmarshal(r.body, &raw)
			if len(raw) != 5 {
				t.Errorf("keys: %s", r.body)
			}
			var e EmbedResponse
			_ = json.Unmarshal(r.body, &e)
			if len(e.Embeddings) != tt.wantN || e.PromptEvalCount != tt.wantCount || e.TotalDuration <= e.LoadDuration-1 || e.Model == "" {
				t.Errorf("response %+v", e)
			}
			for _, v := range e.Embeddings {
				if len(v) != EmbeddingDims || math.Abs(norm(v)-1) > 1e-5 {
					t.Errorf("dims %d norm %v", len(v), norm(v))
				}
			}
		})
	}
	r := do(t, ts, "POST", "/api/embed", `{"model":"all-minilm","input":"some words here","dimensions":64}`, nil)
	var e EmbedResponse
	_ = json.Unmarshal(r.body, &e)
	if len(e.Embeddings) != 1 || len(e.Embeddings[0]) != 64 || math.Abs(norm(e.Embeddings[0])-1) > 1e-5 {
		t.Errorf("dimensions=64: %d", len(e.Embeddings[0]))
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestEmbeddingSimilarity(t *testing.T) {
	base := "the quarterly report shows revenue growth in the european market driven by strong demand for cloud storage products this year"
	if n := len(strings.Fields(base)); n != 20 {
		t.Fatalf("base has %d words", n)
	}
	oneWord := strings.Replace(base, "strong", "steady", 1)
	reordered := "revenue growth in the european market driven by strong demand for cloud storage products this year the quarterly report shows"
	unrelated := []string{
		"my cat likes to sleep on the warm windowsill every afternoon while birds sing outside",
		"compile the kernel with debug symbols and run the regression suite before merging",
		"bake the bread at two hundred degrees until the crust turns golden brown",
	}
	if c := Cosine(Embed(base), Embed(base)); math.Abs(c-1) > 1e-6 {
		t.Errorf("identical: %v", c)
	}
	if c := Cosine(Embed(base), Embed(strings.ToUpper(base)+"!")); math.Abs(c-1) > 1e-6 {
		t.Errorf("case and punctuation: %v", c)
	}
	t.Logf("one word changed %.3f, reordered %.3f, unrelated %.3f %.3f %.3f",
		Cosine(Embed(base), Embed(oneWord)), Cosine(Embed(base), Embed(reordered)),
		Cosine(Embed(base), Embed(unrelated[0])), Cosine(Embed(base), Embed(unrelated[1])), Cosine(Embed(base), Embed(unrelated[2])))
	if c := Cosine(Embed(base), Embed(oneWord)); c < 0.92 {
		t.Errorf("one word changed: %v", c)
	}
	if c := Cosine(Embed(base), Embed(reordered)); c < 0.95 {
		t.Errorf("reordered clause: %v", c)
	}
	for _, u := range unrelated {
		if c := Cosine(Embed(base), Embed(u)); c > 0.5 {
			t.Errorf("unrelated %q: %v", u, c)
		}
	}
	if c := Cosine(Embed(unrelated[0]), Embed(unrelated[1])); c > 0.5 {
		t.Errorf("unrelated pair: %v", c)
	}
	if v := Embed("  ... "); norm(v) != 0 {
		t.Error("no words must give the zero vector")
	}
	// Deterministic.
	a, b := Embed(base), Embed(base)
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("not deterministic")
		}
	}
}
