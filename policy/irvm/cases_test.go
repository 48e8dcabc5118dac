package irvm

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// langCase is a small policy checked against topdown on a few inputs.
type langCase struct {
	name   string
	rego   string   // package x; the entrypoint is x/p unless entry is set
	entry  string   // default "x/p"
	inputs []string // Rego terms; "" is no input
	data   string   // base documents, a Rego object ("": none)
	extra  string   // a second module
}

// defaultInputs are used by cases without inputs of their own.
var defaultInputs = []string{
	"",
	`{}`,
	`{"xs": [1, 2, 3], "s": "héllo wörld", "n": 3, "m": {"a": 1, "b": 2}, "flag": true}`,
	`{"xs": [], "s": "", "n": 0, "m": {}, "flag": false}`,
	`{"xs": [3, "a", null, 2.5, 1.0, {"k": 1}], "s": "A,B,,c", "n": -7.5, "m": {"a": [1], "z": null}, "flag": "yes"}`,
	`{"xs": {"x": 1, "y": 2}, "s": 5, "n": "3", "m": [1, 2], "flag": null}`,
	`{"xs": "abc", "n": 1e3, "m": {"1": "one", "a": {"b": {"c": 1}}}}`,
	`{"xs": [1, 1, 2, 2], "n": 10000000000000000000000, "m": {"a": 0.1, "b": 0.10}}`,
}

var langCases = []langCase{
	{name: "iteration", rego: `package x
p := [x | some x in input.xs]
q := {k: v | some k, v in input.m}
r contains i if input.xs[i]
s := [[i, x] | some i, x in input.xs; x != 2]
t := count([x | input.xs[_] = x]) if input.xs`},
	{name: "iteration entrypoints", entry: "x/s", rego: `package x
s := [[i, x] | some i, x in input.xs; x != 2]`},
	{name: "set iteration order", rego: `package x
p := [x | some x in {"b", "a", 3, 1.5, [1], {"k": 1}, null, true}]
q := [k | some k, _ in {"b": 1, "a": 2, "1": 3, 1: 4}]`},
	{name: "comprehensions", rego: `package x
p := {"arr": [y | some x in input.xs; is_number(x); y := x * 2],
      "set": {x | some x in input.xs},
      "obj": {sprintf("%v", [i]): x | some i, x in input.xs},
      "nested": [[y | some y in input.xs; y != x] | some x in input.xs]}`},
	{name: "object comprehension conflict", rego: `package x
p := {k: x | some x in input.xs; k := "same"}`},
	{name: "functions with several definitions", rego: `package x
f(x) := "pos" if x > 0
f(x) := "neg" if x < 0
f(0) := "zero"
g(x, y) := x + y
h(x) := y if { y := x * 2 } else := -1
p := [f(x) | some x in input.xs; is_number(x)]
q := g(input.n, 1)
r := h(input.n)`},
	{name: "function conflict", rego: `package x
f(x) := 1 if x > 0
f(x) := 2 if x > 1
p := f(input.n)`},
	{name: "else chains and defaults", rego: `package x
default d := "none"
d := "big" if input.n > 100
d := "big" if input.n > 1000
e := "a" if input.n > 5 else := "b" if input.n > 0 else := "c" if input.flag else := "d"
p := {"d": d, "e": e}
default q := false
q if input.flag == true`},
	{name: "complete rule conflict", rego: `package x
p := 1 if input.n > 0
p := 2 if input.n > 1`},
	{name: "partial rules", rego: `package x
s contains x if some x in input.xs
s contains "always"
o[k] := v if some k, v in input.m
o["fixed"] := 1
deep.a.b[k] := true if some k in input.xs
p := {"s": s, "o": o, "deep": deep}`},
	{name: "ref heads conflict", entry: "x/o", rego: `package x
o[k] := v if some k, v in input.m
o["a"] := 99`},
	{name: "negation every and not", rego: `package x
p := {"all_num": all_num, "none_big": none_big, "no_flag": no_flag}
default all_num := false
all_num if every x in input.xs { is_number(x) }
default none_big := false
none_big if not any_big
any_big if { some x in input.xs; x > 2 }
default no_flag := false
no_flag if not input.flag`},
	{name: "with keyword", rego: `package x
q := input.n * 2 if is_number(input.n)
base := {"k": "v"}
r := data.x.base.k
p := {"with_input": a, "with_whole": b, "with_data": c, "with_func": d, "outside": e} if {
  a := q with input.n as 21
  b := q with input as {"n": 5}
  c := r with data.x.base as {"k": "replaced"}
  d := count(input.xs) with count as 42
  e := [v | v := q]
}`},
	{name: "with keyword nested path", rego: `package x
q := object.get(input, ["a", "b", "c"], "missing")
p := [a, b, c] if {
  a := q with input.a.b.c as 1
  b := q with input.a.b as 2
  c := q
}`},
	{name: "builtin errors are undefined", rego: `package x
p := {"div": [x | x := input.n / 0], "num": [x | x := to_number(input.s)], "ok": 1, "parse": object.get(parsed, "k", "none")}
parsed := json.unmarshal(input.s)`},
	{name: "undefined builtin in a body", rego: `package x
default p := "fallback"
p := x if { x := 10 / input.n }`},
	{name: "string builtins", rego: `package x
p := {
  "concat": concat("-", ["a", input.s, "b"]),
  "sprintf": sprintf("%s has %d items and %v", [input.s, count(input.xs), input.m]),
  "lower": lower(input.s), "upper": upper(input.s),
  "split": split(input.s, ","),
  "replace": replace(input.s, "l", "L"),
  "contains": contains(input.s, "wör"),
  "startswith": startswith(input.s, "hé"),
  "trim": trim_space(sprintf("  %v  ", [input.s])),
  "substring": substring(input.s, 1, 3),
  "count": count(input.s),
  "format_int": format_int(input.n, 16),
  "regex": regex.match("^h.*d$", input.s),
  "indexof": indexof(input.s, "o"),
}`},
	{name: "object and collection builtins", rego: `package x
p := {
  "get": object.get(input.m, "a", "default"),
  "get_path": object.get(input.m, ["a", "b", "c"], "default"),
  "keys": object.keys(input.m),
  "union": object.union(input.m, {"extra": true}),
  "remove": object.remove(input.m, ["a"]),
  "count": count(input.xs),
  "sum": sum([x | some x in input.xs; is_number(x)]),
  "max": max([x | some x in input.xs; is_number(x)]),
  "sort": sort([x | some x in input.xs; is_number(x)]),
  "concat": array.concat(input.xs, ["end"]),
  "slice": array.slice(input.xs, 1, 2),
  "json": json.marshal(input.m),
  "type": type_name(input.xs),
  "sets": {"union": {1, 2} | {2, 3}, "and": {1, 2} & {2, 3}, "minus": {1, 2} - {2}},
}`},
	{name: "walk relation", rego: `package x
p := [path | walk(input.m, [path, _])]
q := {v | walk(input.m, [_, v]); is_number(v)}`},
	{name: "numbers", rego: `package x
p := {
  "eq": 1 == 1.0, "eq2": input.n == 3, "lt": input.n < 3.5, "big": input.n > 1e22,
  "arith": input.n + 0.5, "mul": input.n * 3, "rem": 7 % 3, "neg": -input.n,
  "keys": {1: "int", 2.5: "float"}[input.n], "idx": input.xs[1], "idx_float": input.xs[1.0],
  "round": round(2.5), "abs": abs(input.n),
}`},
	{name: "in and membership", rego: `package x
p := {"in_arr": 2 in input.xs, "in_obj": 1 in input.m, "key_in": "a", "kv": ["a", 1] in input.m,
      "some_kv": [k | some k, 1 in input.m]}
q := {k | some k, v in input.m; v == 1}`},
	{name: "data documents", entry: "x", rego: `package x
a := 1
b.c := input.n
d contains "e"
f(x) := x`},
	{name: "dynamic data lookup", rego: `package x
lib.alpha.v := "A"
lib.beta.v := "B"
lib.gamma.v := input.n
p := {"all": [data.x.lib[k].v | some k in ["alpha", "beta", "gamma", "delta"]],
      "q": [v | v := data.x.lib[input.s].v]}`, inputs: []string{`{"s": "alpha"}`, `{"s": "gamma", "n": 4}`, `{"s": "nope"}`, `{"s": 1}`, `{}`}},
	{name: "base documents", entry: "x", data: `{"x": {"base": {"k": 1, "l": [1, 2]}, "other": "o"}, "y": 2}`, rego: `package x
p := data.x.base.k + input.n if is_number(input.n)
q := [k | some k, _ in data.x.base]
r := data.y`},
	{name: "base documents under rules", entry: "y/p", data: `{"x": {"base": {"k": 1}, "sub": {"b": 2}}}`, rego: `package x
q := 1
sub.r := input.n`, extra: `package y
p := {"whole": data.x, "base": data.x.base, "keys": object.keys(data.x), "sub": data.x.sub}`},
	{name: "undefined entrypoint", rego: `package x
p := 1 if input.never`},
	{name: "literals in collections", rego: `package x
multi.a[k] contains v if { some k, v in input.m }
multi.a["lit"] contains {"x": [1, 2]}
multi.b contains {"k": input.n} if input.n
arr := [{"a": 1, "b": [x]} | some x in input.xs]
objs := {k: {"v": [1, {"w": k}]} | some k, _ in input.m}
sets := {{1, 2}, {2, 1}} | {s | some x in [3]; s := {x}}
p := {"multi": multi, "arr": arr, "objs": objs, "sets": sets, "every_obj": every_obj}
default every_obj := false
every_obj if every k, v in input.m { is_string(k); v != null }`},
	{name: "constant", rego: `package x
p := {"a": [1, 2.0, {"b": {3}}]}`},
	{name: "input as a whole", rego: `package x
p := input
q := object.get(input, "n", 0)`},
	{name: "unification", rego: `package x
p := [a, b] if [a, b] = input.xs
q := z if {"a": z} = input.m
r := {"x": x, "y": y} if { [x, {"k": y}] = [1, {"k": input.n}] }`},
	{name: "print without hook", rego: `package x
p := 1 if { print("hello", input.n) }`},
}

// TestLanguageMatchesTopdown checks each small policy against topdown.
func TestLanguageMatchesTopdown(t *testing.T) {
	ctx := context.Background()
	for _, c := range langCases {
		t.Run(c.name, func(t *testing.T) {
			entry := c.entry
			if entry == "" {
				entry = "x/p"
			}
			sources := map[string]string{"x.rego": c.rego}
			if c.extra != "" {
				sources["extra.rego"] = c.extra
			}
			mods := parseModules(t, sources)
			var data ast.Value
			if c.data != "" {
				data = ast.MustParseTerm(c.data).Value
			}
			p, err := Compile(ctx, mods, entry, Options{Data: data})
			if err != nil {
				t.Fatal(err)
			}
			ref := newReferenceWithData(t, mods, entry, data)
			inputs := c.inputs
			if inputs == nil {
				inputs = defaultInputs
			}
			for _, text := range inputs {
				var in ast.Value
				if text != "" {
					in = ast.MustParseTerm(text).Value
				}
				v, ok, err := p.Eval(ctx, in)
				want, wantOK, wantErr := ref.eval(ctx, in)
				if d := sameResult(v, ok, err, want, wantOK, wantErr); d != "" {
					t.Errorf("input %s: %s", text, d)
				} else {
					t.Logf("input %s: %v %v %v", text, v, ok, err)
				}
			}
		})
	}
}
