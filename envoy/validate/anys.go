package validate

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

type validatorAll interface{ ValidateAll() error }

// validateAnys walks m and, for every google.protobuf.Any inside it, unpacks
// the message, runs its ValidateAll and walks it in turn.
func validateAnys(m protoreflect.Message, path string) []error {
	var errs []error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := join(path, string(fd.Name()))
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := range l.Len() {
				errs = append(errs, visit(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))...)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				errs = append(errs, visit(mv.Message(), fmt.Sprintf("%s[%s]", p, k.String()))...)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			errs = append(errs, visit(v.Message(), p)...)
		}
		return true
	})
	return errs
}

func visit(m protoreflect.Message, path string) []error {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return validateAnys(m, path)
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		return []error{fmt.Errorf("%s: %w", path, err)}
	}
	name := string(inner.ProtoReflect().Descriptor().Name())
	p := fmt.Sprintf("%s(%s)", path, name)
	var errs []error
	if v, ok := inner.(validatorAll); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
		}
	}
	return append(errs, validateAnys(proto.Message(inner).ProtoReflect(), p)...)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
