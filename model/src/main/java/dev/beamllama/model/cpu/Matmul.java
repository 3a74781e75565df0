package dev.beamllama.model.cpu;

/**
 * {@code out[r, o] = sum_i x[r, i] * w[o, i]} for {@code rows} rows of {@code x}: torch's
 * {@code x @ w.T} with w stored [out, in]. With {@code bf16Out} each result is rounded to bf16, as
 * a bf16 GEMM stores it.
 *
 * <p>The parallel section around {@link Kernels}' vector code. One instance serves every matmul
 * section of an engine, one section at a time, and keeps its operands in fields rather than in a
 * lambda per call, so that a decode step allocates nothing.
 */
final class Matmul implements Parallel.Task {
  /** Most projections one section computes: query, key and value. */
  private static final int MAX_FUSED = 3;
  private final Parallel pool;
  private final float[][] lanes;
  private final boolean bf16Out;
  private final int[] perTask = new int[MAX_FUSED];
  private final int[] firstTask = new int[MAX_FUSED + 1];
  private final Matrix[] single = new Matrix[1];
  private final float[][] singleOut = new float[1][];
  private float[] x;
  private int rows;
  private Matrix[] ws;
  private float[][] outs;

  /** {@code lanes} is per-worker scratch of {@link Kernels#SCRATCH_FLOATS}. */
  Matmul(Parallel pool, float[][] lanes, boolean bf16Out) {
    this.pool = pool;
    this.lanes = lanes;
    this.bf16Out = bf16Out;
  }

  void apply(float[] x, int rows, Matrix w, float[] out) {
    single[0] = w;
    singleOut[0] = out;
    apply(x, rows, single, singleOut);
  }

  /**
   * Several projections of the same rows in one parallel section ({@code outs[p] = x @ ws[p].T}):
   * the query, key and value projections together have one hand-off instead of three, and the
   * small key and value matrices no longer leave a core idle at the end of their own section.
   */
  void apply(float[] x, int rows, Matrix[] ws, float[][] outs) {
    if (ws.length > MAX_FUSED) {
      throw new IllegalArgumentException(ws.length + " projections in one section; at most " + MAX_FUSED);
    }
    for (int p = 0; p < ws.length; p++) {
      perTask[p] = Kernels.rowsPerTask(ws[p], pool);
      firstTask[p + 1] = firstTask[p] + Math.ceilDiv(ws[p].rows(), perTask[p]);
    }
    this.x = x;
    this.rows = rows;
    this.ws = ws;
    this.outs = outs;
    pool.forEach(firstTask[ws.length], this);
  }

  @Override
  public void run(int task, int worker) {
    int p = 0;
    while (task >= firstTask[p + 1]) {
      p++;
    }
    Kernels.matmulRows(x, rows, ws[p], outs[p], (task - firstTask[p]) * perTask[p], perTask[p], bf16Out, lanes[worker]);
  }
}
