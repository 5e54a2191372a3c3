// Fitting per-primitive weights to measured times: `ptlab calibrate`'s
// arithmetic. Each benchmark b has a measured time t_b (ns per page on the
// host) and the model's counts c_bk of each primitive k per page for the
// same operation; the weights w_k >= 0 minimise the sum of squared relative
// errors, sum_b ((sum_k w_k c_bk - t_b) / t_b)^2, by non-negative least
// squares (Lawson and Hanson, "Solving Least Squares Problems", 1974,
// ch. 23). Relative errors, so that a 10 us fault and a 15 ns mprotect of a
// THP count alike. No Node APIs.

export interface Benchmark {
  name: string;
  time: number; // measured ns per page
  counts: number[]; // per feature, per page
}

export interface Fit {
  weights: number[]; // per feature, ns per event
  // Per benchmark: the prediction with all benchmarks in the fit, and with
  // the benchmark itself left out (leave-one-out), as relative errors.
  predicted: number[];
  error: number[];
  looPredicted: number[];
  looError: number[];
}

// Non-negative least squares: argmin ||A x - b|| subject to x >= 0, A given
// as rows. Columns are scaled to unit norm first (the counts differ by
// orders of magnitude between primitives); a column of zeros gets weight 0.
export function nnls(rows: readonly (readonly number[])[], b: readonly number[]): number[] {
  const m = rows.length;
  const n = m > 0 ? (rows[0] as readonly number[]).length : 0;
  const scale = new Array<number>(n).fill(0);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += ((rows[i] as readonly number[])[j] as number) ** 2;
    scale[j] = Math.sqrt(s);
  }
  const col = (j: number) => (i: number) => ((scale[j] as number) > 0 ? ((rows[i] as readonly number[])[j] as number) / (scale[j] as number) : 0);
  const A: number[][] = [];
  for (let i = 0; i < m; i++) A.push(Array.from({ length: n }, (_, j) => col(j)(i)));
  const x = new Array<number>(n).fill(0);
  const passive = new Array<boolean>(n).fill(false);
  const usable = scale.map((s) => s > 0);
  const tol = 1e-10 * Math.max(1, Math.sqrt(b.reduce((s, v) => s + v * v, 0)));
  const gradient = (): number[] => {
    const r = b.map((bi, i) => bi - dot(A[i] as number[], x));
    return Array.from({ length: n }, (_, j) => A.reduce((s, row, i) => s + (row[j] as number) * (r[i] as number), 0));
  };
  for (let outer = 0; outer < 3 * n + 10; outer++) {
    const w = gradient();
    let t = -1;
    for (let j = 0; j < n; j++) if (!passive[j] && usable[j] && (w[j] as number) > tol && (t < 0 || (w[j] as number) > (w[t] as number))) t = j;
    if (t < 0) break;
    passive[t] = true;
    for (let inner = 0; inner < 3 * n + 10; inner++) {
      const s = leastSquares(A, b, passive);
      let allPositive = true;
      for (let j = 0; j < n; j++) if (passive[j] && (s[j] as number) <= 0) allPositive = false;
      if (allPositive) {
        for (let j = 0; j < n; j++) x[j] = s[j] as number;
        break;
      }
      let alpha = Number.POSITIVE_INFINITY;
      for (let j = 0; j < n; j++) {
        if (!passive[j] || (s[j] as number) > 0) continue;
        const d = (x[j] as number) - (s[j] as number);
        if (d > 0) alpha = Math.min(alpha, (x[j] as number) / d);
      }
      if (!Number.isFinite(alpha)) alpha = 0;
      for (let j = 0; j < n; j++) if (passive[j]) x[j] = (x[j] as number) + alpha * ((s[j] as number) - (x[j] as number));
      for (let j = 0; j < n; j++)
        if (passive[j] && (x[j] as number) <= 1e-14) {
          passive[j] = false;
          x[j] = 0;
        }
    }
  }
  return x.map((v, j) => ((scale[j] as number) > 0 ? v / (scale[j] as number) : 0));
}

function dot(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}

// Unconstrained least squares over the passive columns (the others 0): the
// normal equations with a tiny ridge against collinear columns, solved by
// Gaussian elimination with partial pivoting.
function leastSquares(A: readonly number[][], b: readonly number[], passive: readonly boolean[]): number[] {
  const idx: number[] = [];
  for (let j = 0; j < passive.length; j++) if (passive[j]) idx.push(j);
  const k = idx.length;
  const M: number[][] = [];
  for (let p = 0; p < k; p++) {
    const row = new Array<number>(k + 1).fill(0);
    for (let q = 0; q < k; q++) row[q] = A.reduce((s, r) => s + (r[idx[p] as number] as number) * (r[idx[q] as number] as number), 0);
    row[p] = (row[p] as number) * (1 + 1e-12) + 1e-14;
    row[k] = A.reduce((s, r, i) => s + (r[idx[p] as number] as number) * (b[i] as number), 0);
    M.push(row);
  }
  for (let c = 0; c < k; c++) {
    let piv = c;
    for (let r = c + 1; r < k; r++) if (Math.abs((M[r] as number[])[c] as number) > Math.abs((M[piv] as number[])[c] as number)) piv = r;
    [M[c], M[piv]] = [M[piv] as number[], M[c] as number[]];
    const d = (M[c] as number[])[c] as number;
    if (d === 0) continue;
    for (let r = 0; r < k; r++) {
      if (r === c) continue;
      const f = ((M[r] as number[])[c] as number) / d;
      if (f === 0) continue;
      for (let q = c; q <= k; q++) (M[r] as number[])[q] = ((M[r] as number[])[q] as number) - f * ((M[c] as number[])[q] as number);
    }
  }
  const s = new Array<number>(passive.length).fill(0);
  for (let p = 0; p < k; p++) {
    const d = (M[p] as number[])[p] as number;
    s[idx[p] as number] = d === 0 ? 0 : ((M[p] as number[])[k] as number) / d;
  }
  return s;
}

// Weights that minimise the relative error over the benchmarks given.
export function fitWeights(bs: readonly Benchmark[]): number[] {
  return nnls(
    bs.map((x) => x.counts.map((c) => c / x.time)),
    bs.map(() => 1),
  );
}

export function predict(weights: readonly number[], counts: readonly number[]): number {
  return dot(weights, counts);
}

// The fit over all benchmarks, and leave-one-out: each benchmark predicted
// by the weights fitted to the others (how well the table predicts an
// operation it was not fitted to).
export function calibrate(bs: readonly Benchmark[]): Fit {
  const weights = fitWeights(bs);
  const predicted = bs.map((x) => predict(weights, x.counts));
  const looPredicted = bs.map((x, i) => predict(fitWeights(bs.filter((_, j) => j !== i)), x.counts));
  const rel = (p: number, t: number) => (p - t) / t;
  return {
    weights,
    predicted,
    error: predicted.map((p, i) => rel(p, (bs[i] as Benchmark).time)),
    looPredicted,
    looError: looPredicted.map((p, i) => rel(p, (bs[i] as Benchmark).time)),
  };
}
