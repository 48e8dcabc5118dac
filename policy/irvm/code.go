package irvm

import (
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
)

// opcode is the kind of a translated statement.
type opcode uint8

// Opcodes. The comment says which fields of stmt each one uses.
const (
	opNop              opcode = iota
	opReturn                  // a (local)
	opCall                    // fn, args -> target
	opBuiltin                 // bi, args -> target
	opCallDynamic             // args (path), cargs (call args) -> target
	opBlock                   // blocks
	opBreak                   // n
	opDot                     // a[b] -> target
	opDotPath                 // a[b] -> target, b a constant string, path n (paths.go)
	opLen                     // len(a) -> target
	opScan                    // for target, value in a: body
	opNot                     // body
	opWith                    // target (local), keys (path), a (value), body
	opAssignVar               // a -> target
	opAssignVarOnce           // a -> target, conflict if target holds another value
	opResetLocal              // target
	opConst                   // k -> target (numbers, null, folded literals)
	opMakeArray               // n (capacity) -> target
	opMakeObject              // -> target
	opMakeSet                 // -> target
	opMakeArrayItems          // [args...] -> target; n = 1: modifiable
	opMakeObjectItems         // {keys[i]: args[i]} -> target; n = 1: modifiable
	opMakeSetItems            // {args...} -> target; n = 1: modifiable
	opEqual                   // a == b
	opNotEqual                // a != b
	opIsArray                 // a
	opIsObject                // a
	opIsSet                   // a
	opIsDefined               // a (local)
	opIsUndefined             // a (local)
	opUndefined               // always undefined
	opArrayAppend             // target (array) += a
	opObjectInsert            // target (object)[a] = b
	opObjectInsertOnce        // target (object)[a] = b, conflict if a holds another value
	opObjectMerge             // merge(a, b) -> target
	opSetAdd                  // target (set) += a
	opResultSetAdd            // a
	opResult                  // a: the plan's result, without the {"result": a} wrapper
)

// operand is a statement's input: a local (local >= 0) or a constant term.
type operand struct {
	local int32
	c     *ast.Term
}

// noOperand is the operand of statements that have none.
var noOperand = operand{local: -1}

func localOperand(l int32) operand { return operand{local: l} }

func constOperand(t *ast.Term) operand { return operand{local: -1, c: t} }

func (o *operand) isConst() bool { return o.local < 0 }

// stmt is one translated IR statement.
type stmt struct {
	// The fields most statements use come first: one or two cache lines.
	op     opcode
	target int32
	value  int32 // opScan: the value local
	n      int32
	a, b   operand
	k      *ast.Term
	fn     *function
	bi     *builtin
	body   *block
	args   []operand
	blocks []*block
	keys   []*ast.Term // opWith: the path; opMakeObjectItems: the keys
	cargs  []operand
	loc    *ir.Location
}

// newStmt returns a statement with no target and no operands.
func newStmt(op opcode) stmt {
	return stmt{op: op, target: -1, value: -1, a: noOperand, b: noOperand}
}

// block is a translated IR block.
type block struct {
	stmts []stmt
}

// function is a translated IR function or plan.
type function struct {
	name    string
	index   int     // in Program.funcs; -1 for the plan
	params  []int32 // locals the arguments go to
	nlocals int
	memo    bool // no argument but input and data: memoized per evaluation
	blocks  []*block
	path    []string // for dynamic calls
}

// pathNode is a node of the tree of functions by path, for dynamic calls.
type pathNode struct {
	children map[string]*pathNode
	fn       *function
}

func (n *pathNode) insert(path []string, fn *function) {
	for _, p := range path {
		if n.children == nil {
			n.children = map[string]*pathNode{}
		}
		c, ok := n.children[p]
		if !ok {
			c = &pathNode{}
			n.children[p] = c
		}
		n = c
	}
	n.fn = fn
}
