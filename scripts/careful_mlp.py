"""A careful dense float32 NumPy MLP trainer: the bar hpsearch's core must clear.

The best plain NumPy can do for relu layers, plain SGD and softmax cross-entropy
without hpsearch's reordering tricks (no folded constant inputs, no row groups, no
fused BLAS update through ctypes): float32; every buffer allocated once; the bias
folded into each weight matrix (the inputs get a column of ones once, at set-up;
the hidden activations keep a row of ones); the first layer's product taken
sample-major from 64 rows (``x @ W``, x gathered sample-major: with OpenBLAS's AVX-512
kernels a fifth faster than ``W^T @ x^T`` at batch 100 and 1000; level with its AVX2
kernels), its relu writing it feature-major, and feature-major below (``W^T @ x^T``,
as fast at batch 10, where the relu's transposed read does not pay); the hidden activations feature-major
(one column per sample, so the class reductions run along contiguous rows); batches gathered with
``np.take(..., out=, mode="clip")``; relu's derivative as a multiplication by a
mask, no boolean indexing; the learning rate over the batch size folded into the
output delta so the update is one subtraction over one flat parameter vector;
validation once per epoch.

``train_careful(x, y, x_val, y_val, hidden, batch, epochs, lr, seed)`` returns the
validation accuracy after the last epoch.
"""

from __future__ import annotations

import numpy as np

EVAL_ROWS = 512
SAMPLE_MAJOR_ROWS = 64


def train_careful(x, y, x_val, y_val, hidden=(100, 50), batch=100, epochs=1, lr=0.1, seed=0) -> float:
    f32 = np.float32
    rng = np.random.default_rng(seed)
    n, d = x.shape
    k = int(max(y.max(), y_val.max())) + 1
    sizes = (d, *hidden, k)
    # the data with a ones column: the first layer's bias rides in its product
    x1 = np.empty((n, d + 1), f32)
    x1[:, :d] = x
    x1[:, d] = 1.0
    xv1 = np.empty((len(x_val), d + 1), f32)
    xv1[:, :d] = x_val
    xv1[:, d] = 1.0
    y = np.asarray(y, np.intp)
    y_val = np.asarray(y_val, np.intp)

    # parameters: one flat vector of [W_i; b_i] blocks (He-normal weights, zero biases)
    shapes = [(a + 1, b) for a, b in zip(sizes[:-1], sizes[1:])]
    params = np.zeros(sum(a * b for a, b in shapes), f32)
    grads = np.zeros_like(params)
    Wb, dWb, at = [], [], 0
    for a, b in shapes:
        Wb.append(params[at : at + a * b].reshape(a, b))
        dWb.append(grads[at : at + a * b].reshape(a, b))
        Wb[-1][:-1] = rng.standard_normal((a - 1, b), dtype=f32) * f32(np.sqrt(2.0 / (a - 1)))
        at += a * b

    # one-hot targets, feature-major, times lr / batch (the delta carries the step size)
    def targets(m):
        t = np.zeros((k, n), f32)
        t[y, np.arange(n)] = lr / m
        return t

    class Buffers:
        def __init__(self, m):
            self.m = m
            self.xb = np.empty((m, d + 1), f32)
            # the first-layer product: sample-major from SAMPLE_MAJOR_ROWS rows, else feature-major
            self.u1 = np.empty((m, hidden[0]) if m >= SAMPLE_MAJOR_ROWS else (hidden[0], m), f32)
            # feature-major activations with a ones row (the next layer's bias)
            self.a = [np.empty((w + 1, m), f32) for w in hidden]
            for a, w in zip(self.a, hidden):
                a[w] = 1.0
            self.u = [None] + [np.empty((w, m), f32) for w in hidden[1:]]
            self.mask = [np.empty((w, m), f32) for w in hidden]
            self.g = [np.empty((w, m), f32) for w in hidden]
            self.out = np.empty((k, m), f32)
            self.mx = np.empty(m, f32)
            self.s = np.empty(m, f32)
            self.t = np.empty((k, m), f32)
            self.ts = targets(m)
            self.scale = f32(lr / m)

    def step(buf, idx):
        xb, a, u, mask, g = buf.xb, buf.a, buf.u, buf.mask, buf.g
        x1.take(idx, axis=0, out=xb, mode="clip")
        buf.ts.take(idx, axis=1, out=buf.t, mode="clip")
        # forward
        if buf.m >= SAMPLE_MAJOR_ROWS:
            np.dot(xb, Wb[0], out=buf.u1)
            np.maximum(buf.u1.T, 0.0, out=a[0][:-1])
        else:
            np.dot(Wb[0].T, xb.T, out=buf.u1)
            np.maximum(buf.u1, 0.0, out=a[0][:-1])
        for i in range(1, len(hidden)):
            np.dot(Wb[i].T, a[i - 1], out=u[i])
            np.maximum(u[i], 0.0, out=a[i][:-1])
        out = buf.out
        np.dot(Wb[-1].T, a[-1], out=out)
        # softmax - t, scaled: delta = lr/m * (softmax(out) - onehot)
        np.maximum.reduce(out, axis=0, out=buf.mx)
        np.subtract(out, buf.mx, out=out)
        np.exp(out, out=out)
        np.add.reduce(out, axis=0, out=buf.s)
        np.divide(buf.scale, buf.s, out=buf.s)
        np.multiply(out, buf.s, out=out)
        np.subtract(out, buf.t, out=out)
        delta = out
        # backward
        np.dot(a[-1], delta.T, out=dWb[-1])
        L = len(hidden)
        np.dot(Wb[-1][:-1], delta, out=g[-1])
        for i in range(L - 1, -1, -1):
            np.greater(a[i][:-1], 0.0, out=mask[i])
            np.multiply(g[i], mask[i], out=g[i])
            if i:
                np.dot(a[i - 1], g[i].T, out=dWb[i])
                np.dot(Wb[i][:-1], g[i], out=g[i - 1])
            else:
                np.dot(xb.T, g[0].T, out=dWb[0])
        np.subtract(params, grads, out=params)

    def validate(xs, ys):
        """(mean loss, accuracy) over the validation rows, in chunks."""
        correct, loss = 0, 0.0
        for start in range(0, len(xs), EVAL_ROWS):
            part, labels = xs[start : start + EVAL_ROWS], ys[start : start + EVAL_ROWS]
            h = np.maximum(part @ Wb[0], 0.0)
            for i in range(1, len(hidden)):
                h = np.maximum(h @ Wb[i][:-1] + Wb[i][-1], 0.0)
            scores = h @ Wb[-1][:-1] + Wb[-1][-1]
            z = scores - scores.max(axis=1, keepdims=True)
            loss += float(np.log(np.exp(z).sum(axis=1)).sum() - z[np.arange(len(labels)), labels].sum())
            correct += int(np.count_nonzero(scores.argmax(axis=1) == labels))
        return loss / len(ys), correct / len(ys)

    batch = min(batch, n)
    n_full, last = divmod(n, batch)
    full = Buffers(batch)
    tail = Buffers(last) if last else None
    acc = 0.0
    for _ in range(epochs):
        perm = rng.permutation(n)
        batches = perm[: n_full * batch].reshape(n_full, batch)
        for idx in batches:
            step(full, idx)
        if tail is not None:
            step(tail, perm[n_full * batch :])
        _, acc = validate(xv1, y_val)
    return acc
