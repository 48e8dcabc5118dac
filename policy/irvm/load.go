package irvm

import (
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
)

// maxLocals bounds the locals of one function: a plan naming a larger
// local is malformed.
const maxLocals = 1 << 20

// loader translates an *ir.Policy into the interpreter's form.
type loader struct {
	policy   *ir.Policy
	strings  []*ast.Term
	funcs    map[string]*function
	builtins map[string]*builtin
	numbers  map[string]*ast.Term
	nlocals  int // of the function being translated
}

func newLoader(p *ir.Policy) (*loader, error) {
	if p == nil || p.Static == nil || p.Plans == nil {
		return nil, fmt.Errorf("%w: no static section or plans", errMalformed)
	}
	l := &loader{policy: p, funcs: map[string]*function{}, builtins: map[string]*builtin{},
		numbers: map[string]*ast.Term{}}
	l.strings = make([]*ast.Term, len(p.Static.Strings))
	for i, s := range p.Static.Strings {
		if s == nil {
			return nil, fmt.Errorf("%w: string constant %d is nil", errMalformed, i)
		}
		l.strings[i] = ast.StringTerm(s.Value)
	}
	return l, nil
}

// loadFuncs translates every function: shells first, so that calls in any
// order resolve.
func (l *loader) loadFuncs() ([]*function, error) {
	if l.policy.Funcs == nil {
		return nil, nil
	}
	out := make([]*function, len(l.policy.Funcs.Funcs))
	for i, f := range l.policy.Funcs.Funcs {
		if f == nil {
			return nil, fmt.Errorf("%w: function %d is nil", errMalformed, i)
		}
		if _, dup := l.funcs[f.Name]; dup {
			return nil, fmt.Errorf("%w: function %q defined twice", errMalformed, f.Name)
		}
		fn := &function{name: f.Name, index: i, path: f.Path}
		for _, p := range f.Params {
			fn.params = append(fn.params, int32(p))
		}
		fn.memo = len(f.Params) == 2 && f.Params[0] == ir.Input && f.Params[1] == ir.Data
		l.funcs[f.Name] = fn
		out[i] = fn
	}
	for i, f := range l.policy.Funcs.Funcs {
		fn := out[i]
		l.nlocals = 0
		for _, p := range fn.params {
			if err := l.local(ir.Local(p)); err != nil {
				return nil, fmt.Errorf("function %s: %w", f.Name, err)
			}
		}
		if err := l.local(f.Return); err != nil {
			return nil, fmt.Errorf("function %s: %w", f.Name, err)
		}
		blocks, err := l.blocks(f.Blocks)
		if err != nil {
			return nil, fmt.Errorf("function %s: %w", f.Name, err)
		}
		fn.blocks, fn.nlocals = blocks, l.nlocals
	}
	return out, nil
}

// loadPlan translates the named plan into a function of input and data.
func (l *loader) loadPlan(name string) (*function, error) {
	for _, p := range l.policy.Plans.Plans {
		if p == nil || p.Name != name {
			continue
		}
		l.nlocals = int(ir.Unused)
		blocks, err := l.blocks(p.Blocks)
		if err != nil {
			return nil, fmt.Errorf("plan %s: %w", name, err)
		}
		return &function{name: name, index: -1, params: []int32{int32(ir.Input), int32(ir.Data)},
			blocks: blocks, nlocals: l.nlocals}, nil
	}
	return nil, fmt.Errorf("%w: no plan named %q", errMalformed, name)
}

// local records that the function uses local x.
func (l *loader) local(x ir.Local) error {
	if x < 0 || x >= maxLocals {
		return fmt.Errorf("%w: local %d out of range", errMalformed, x)
	}
	if int(x) >= l.nlocals {
		l.nlocals = int(x) + 1
	}
	return nil
}

func (l *loader) target(x ir.Local) (int32, error) {
	return int32(x), l.local(x)
}

// operand resolves an IR operand. Plans decoded from JSON hold pointers
// (*ir.Local); planned in memory, values.
func (l *loader) operand(o ir.Operand) (operand, error) {
	switch v := o.Value.(type) {
	case ir.Local:
		return localOperand(int32(v)), l.local(v)
	case *ir.Local:
		if v != nil {
			return localOperand(int32(*v)), l.local(*v)
		}
	case ir.StringIndex:
		return l.stringOperand(int(v))
	case *ir.StringIndex:
		if v != nil {
			return l.stringOperand(int(*v))
		}
	case ir.Bool:
		return constOperand(ast.InternedTerm(bool(v))), nil
	case *ir.Bool:
		if v != nil {
			return constOperand(ast.InternedTerm(bool(*v))), nil
		}
	}
	return operand{}, fmt.Errorf("%w: operand %v", errMalformed, o.Value)
}

func (l *loader) stringOperand(i int) (operand, error) {
	if i < 0 || i >= len(l.strings) {
		return operand{}, fmt.Errorf("%w: string constant %d out of range", errMalformed, i)
	}
	return constOperand(l.strings[i]), nil
}

func (l *loader) operands(os []ir.Operand) ([]operand, error) {
	out := make([]operand, len(os))
	for i, o := range os {
		var err error
		if out[i], err = l.operand(o); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (l *loader) blocks(bs []*ir.Block) ([]*block, error) {
	out := make([]*block, len(bs))
	for i, b := range bs {
		var err error
		if out[i], err = l.block(b); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (l *loader) block(b *ir.Block) (*block, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil block", errMalformed)
	}
	out := &block{stmts: make([]stmt, 0, len(b.Stmts))}
	for _, s := range b.Stmts {
		t, err := l.stmt(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.where(s), err)
		}
		out.stmts = append(out.stmts, t)
	}
	return out, nil
}

// where describes a statement's location for error messages.
func (l *loader) where(s ir.Stmt) string {
	if s == nil {
		return "nil statement"
	}
	loc := s.GetLocation()
	file := "?"
	if loc.File >= 0 && loc.File < len(l.policy.Static.Files) && l.policy.Static.Files[loc.File] != nil {
		file = l.policy.Static.Files[loc.File].Value
	}
	return fmt.Sprintf("%T at %s:%d:%d", s, file, loc.Row, loc.Col)
}

// number returns the term of a number literal, made once per plan.
func (l *loader) number(text string) (*ast.Term, error) {
	if t, ok := l.numbers[text]; ok {
		return t, nil
	}
	parsed, err := ast.ParseTerm(text)
	if err != nil {
		return nil, fmt.Errorf("%w: number %q: %w", errMalformed, text, err)
	}
	if _, ok := parsed.Value.(ast.Number); !ok {
		return nil, fmt.Errorf("%w: %q is not a number", errMalformed, text)
	}
	t := ast.NumberTerm(json.Number(text))
	l.numbers[text] = t
	return t, nil
}
