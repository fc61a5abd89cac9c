"""In-place updates under no_grad, shared by the backends' in-place tests (test_llvm_inplace.py,
test_cuda.py): each backend may store a new value straight into its input only where that
cannot overwrite elements still to be read (a view of the input read at other indices, a
reduction of it, a later kernel reading the old values)."""
import tracejit as tj

# cases that return nothing: a returned x.sum() would fuse their stores into a reduction
NO_RESULT = ("sgd", "swap", "bias_grad")


def inplace_case(case, x, g=None):
    with tj.no_grad():
        if case == "sgd":
            g.mul_(0.9).add_(x)
            x.add_(g, alpha=-0.1)
        elif case == "transposed":
            x.t().mul_(0.5)
        elif case == "transpose":
            x.copy_(x.t() * 2)
        elif case == "flip":
            x.add_(x.flip(0))
        elif case == "row":
            x.sub_(x[0])
        elif case == "sum_after":
            old = x * 3
            x.mul_(2)
            return (old.sum(0) + x).sum(1)
        elif case == "read_after":
            old = x.exp()
            x.add_(1)
            return old * x
        elif case == "shifted_slice":
            x[1:].add_(x[:-1])
        elif case == "swap":                # a store over x must not feed the store into g
            t = x.clone()
            x.copy_(g)
            g.add_(t)
        elif case == "bias_grad":           # a column sum's epilogue updating a vector
            g.sub_((x * 0.5).sum(0))
    return None if case in NO_RESULT else x.sum()
