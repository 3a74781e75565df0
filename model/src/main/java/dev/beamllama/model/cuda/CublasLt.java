package dev.beamllama.model.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * The forward pass's matrix multiplies, {@code y = x W^T} for row-major activations {@code x [rows,
 * in]} and a torch Linear weight {@code W [out, in]}, through cuBLASLt with <b>one algorithm per
 * weight shape</b>, chosen at load, for every row count.
 *
 * <p>Why: cuBLAS picks its kernel by the whole problem's shape, and for few rows it splits the sum
 * over {@code in} into parts added afterwards. A row's result then depends on how many rows share
 * its step, and in bf16 the engine's contract (the same records whatever the batching) breaks on
 * the GPU. An algorithm without split-K ({@code CUBLASLT_ALGO_CONFIG_SPLITK_NUM} 1, no reduction
 * scheme) computes each output element in one CTA that walks {@code in} in its tile's order,
 * whatever the rows. {@link #linear} takes cuBLASLt's own candidates for the decode batch size,
 * pins each to no split, and keeps the first that runs at every row count up to the largest and
 * gives a row the same bits alone, among 9 and among up to 256 rows (checked on the real weights).
 * f32 models accumulate in f32 without TF32.
 */
final class CublasLt implements AutoCloseable {
  private static final int CUBLAS_OP_N = 0;
  private static final int CUBLAS_OP_T = 1;
  private static final int CUDA_R_32F = 0;
  private static final int CUDA_R_16BF = 14;
  private static final int CUBLAS_COMPUTE_32F = 68;
  private static final int MATMUL_DESC_TRANSA = 3;
  private static final int MATMUL_DESC_TRANSB = 4;
  private static final int PREF_MAX_WORKSPACE_BYTES = 1;
  private static final int ALGO_CONFIG_SPLITK_NUM = 2;
  private static final int ALGO_CONFIG_REDUCTION_SCHEME = 3;
  private static final int REDUCTION_SCHEME_NONE = 0;
  private static final long ALGO_BYTES = 64;
  /** cublasLtMatmulHeuristicResult_t: the algorithm (64 bytes), workspaceSize, state, wavesCount, reserved[4]. */
  private static final long HEURISTIC_BYTES = 96;
  private static final long HEURISTIC_WORKSPACE = 64;
  private static final long HEURISTIC_STATE = 72;
  private static final int CANDIDATES = 16;
  /** What NVIDIA suggests for Hopper; more than any unsplit algorithm needs. */
  static final long WORKSPACE_BYTES = 32L << 20;
  /** The row counts whose results a chosen algorithm must agree on (each at most the largest the shape takes). */
  private static final int[] PROBE_ROWS = {1, 9, 256};

  private final CudaDriver driver;
  private final MemorySegment stream;
  private final Arena arena = Arena.ofShared();
  private final MethodHandle matmul;
  private final MethodHandle layoutCreate;
  private final MethodHandle layoutDestroy;
  private final MethodHandle heuristic;
  private final MethodHandle configSet;
  private final MethodHandle algoCheck;
  private final MethodHandle descDestroy;
  private final MethodHandle prefDestroy;
  private final MethodHandle destroy;
  private final MemorySegment handle;
  private final MemorySegment desc;
  private final MemorySegment preference;
  private final long workspace;
  private final MemorySegment one;
  private final MemorySegment zero;
  /** Everything taken from cuBLASLt and the driver, layouts included, released in reverse by {@link #close()}. */
  private final Releases resources = new Releases();

  /** A cuBLASLt handle, one matmul descriptor (W transposed, x as is), a workspace; the work goes to {@code stream}. */
  CublasLt(CudaDriver driver, MemorySegment stream) {
    this.driver = driver;
    this.stream = stream;
    SymbolLookup lib = CudaLibraries.cublasLt(Arena.global());
    MethodHandle create = downcall(lib, "cuBLASLt", "cublasLtCreate", ADDRESS);
    destroy = downcall(lib, "cuBLASLt", "cublasLtDestroy", ADDRESS);
    MethodHandle descCreate = downcall(lib, "cuBLASLt", "cublasLtMatmulDescCreate", ADDRESS, JAVA_INT, JAVA_INT);
    descDestroy = downcall(lib, "cuBLASLt", "cublasLtMatmulDescDestroy", ADDRESS);
    MethodHandle descSet = downcall(lib, "cuBLASLt", "cublasLtMatmulDescSetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG);
    MethodHandle prefCreate = downcall(lib, "cuBLASLt", "cublasLtMatmulPreferenceCreate", ADDRESS);
    prefDestroy = downcall(lib, "cuBLASLt", "cublasLtMatmulPreferenceDestroy", ADDRESS);
    MethodHandle prefSet = downcall(lib, "cuBLASLt", "cublasLtMatmulPreferenceSetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG);
    layoutCreate = downcall(lib, "cuBLASLt", "cublasLtMatrixLayoutCreate", ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG);
    layoutDestroy = downcall(lib, "cuBLASLt", "cublasLtMatrixLayoutDestroy", ADDRESS);
    heuristic = downcall(lib, "cuBLASLt", "cublasLtMatmulAlgoGetHeuristic", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
        JAVA_INT, ADDRESS, ADDRESS);
    configSet = downcall(lib, "cuBLASLt", "cublasLtMatmulAlgoConfigSetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG);
    algoCheck = downcall(lib, "cuBLASLt", "cublasLtMatmulAlgoCheck", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
    matmul = downcall(lib, "cuBLASLt", "cublasLtMatmul", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG,
        ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS);
    try {
      MemorySegment out = arena.allocate(ADDRESS);
      check(invoke(create, out), "cublasLtCreate");
      handle = out.get(ADDRESS, 0);
      resources.add(() -> check(invoke(destroy, handle), "cublasLtDestroy"));
      check(invoke(descCreate, out, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
      desc = out.get(ADDRESS, 0);
      resources.add(() -> check(invoke(descDestroy, desc), "cublasLtMatmulDescDestroy"));
      MemorySegment value = arena.allocate(JAVA_LONG);
      value.set(JAVA_INT, 0, CUBLAS_OP_T);
      check(invoke(descSet, desc, MATMUL_DESC_TRANSA, value, 4L), "cublasLtMatmulDescSetAttribute(TRANSA)");
      value.set(JAVA_INT, 0, CUBLAS_OP_N);
      check(invoke(descSet, desc, MATMUL_DESC_TRANSB, value, 4L), "cublasLtMatmulDescSetAttribute(TRANSB)");
      check(invoke(prefCreate, out), "cublasLtMatmulPreferenceCreate");
      preference = out.get(ADDRESS, 0);
      resources.add(() -> check(invoke(prefDestroy, preference), "cublasLtMatmulPreferenceDestroy"));
      value.set(JAVA_LONG, 0, WORKSPACE_BYTES);
      check(invoke(prefSet, preference, PREF_MAX_WORKSPACE_BYTES, value, 8L), "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
      workspace = driver.alloc(WORKSPACE_BYTES);
      resources.add(() -> driver.free(workspace));
    } catch (RuntimeException e) {
      resources.closeAfter(e);
      arena.close();
      throw e;
    }
    one = arena.allocate(JAVA_FLOAT);
    one.set(JAVA_FLOAT, 0, 1f);
    zero = arena.allocate(JAVA_FLOAT);
    zero.set(JAVA_FLOAT, 0, 0f);
  }

  /** A cuBLAS or cuBLASLt function returning {@code cublasStatus_t}; {@code library} names it when missing. */
  static MethodHandle downcall(SymbolLookup lib, String library, String name, MemoryLayout... args) {
    MemorySegment symbol = lib.find(name).orElseThrow(() -> new CudaUnavailableException(library + " has no " + name));
    return Linker.nativeLinker().downcallHandle(symbol, FunctionDescriptor.of(JAVA_INT, args));
  }

  /**
   * The multiply by {@code weight} ({@code [out, in]}, bf16 or f32), for 1 to {@code maxRows} rows,
   * with the algorithm chosen as the class says for {@code tuneRows} rows (the decode batch). Runs
   * a few multiplies of random rows by the weight to check it; throws {@link CudaException} when no
   * candidate qualifies, saying why each did not.
   */
  Linear linear(String name, long weight, int out, int in, boolean bf16, int tuneRows, int maxRows) {
    Linear linear = new Linear(name, out, in, bf16, maxRows);
    tuneRows = Math.max(1, Math.min(tuneRows, maxRows));
    List<String> rejected = new ArrayList<>();
    // Candidates and query buffers live for the choice only; the chosen algorithm is copied to the handle's arena.
    try (Arena local = Arena.ofConfined(); Releases scratch = new Releases()) {
      MemorySegment results = local.allocate(HEURISTIC_BYTES * CANDIDATES, 8);
      MemorySegment count = local.allocate(JAVA_INT);
      int status = invoke(heuristic, handle, desc, linear.weightLayout, linear.x(tuneRows), linear.y(tuneRows), linear.y(tuneRows),
          preference, CANDIDATES, results, count);
      check(status, "cublasLtMatmulAlgoGetHeuristic for " + linear);
      int probeRows = Math.min(PROBE_ROWS[PROBE_ROWS.length - 1], maxRows);
      long x = driver.alloc((long) probeRows * in * linear.elementBytes);
      scratch.add(() -> driver.free(x));
      long y = driver.alloc((long) probeRows * out * linear.elementBytes);
      scratch.add(() -> driver.free(y));
      fillRandom(x, (long) probeRows * in, bf16, 31L * out + in);
      for (int i = 0; i < count.get(JAVA_INT, 0); i++) {
        MemorySegment result = results.asSlice(HEURISTIC_BYTES * i, HEURISTIC_BYTES);
        if (result.get(JAVA_INT, HEURISTIC_STATE) != 0) {
          continue;
        }
        MemorySegment algo = local.allocate(ALGO_BYTES, 8);
        algo.copyFrom(result.asSlice(0, ALGO_BYTES));
        String why = unsplit(algo, local);
        if (why == null) {
          why = runsAtEveryRowCount(linear, algo, tuneRows, local);
        }
        if (why == null) {
          linear.algo = algo;
          why = sameBitsAtEveryRowCount(linear, weight, x, y, probeRows);
        }
        if (why == null) {
          linear.algo = arena.allocate(ALGO_BYTES, 8).copyFrom(algo);
          return linear;
        }
        linear.algo = null;
        rejected.add("candidate " + (i + 1) + ": " + why);
      }
      throw new CudaException("cuBLASLt offers no batch-invariant algorithm for " + linear + " (" + count.get(JAVA_INT, 0)
          + " candidates for " + tuneRows + " rows" + (rejected.isEmpty() ? "" : ": " + String.join("; ", rejected)) + ")");
    }
  }

  /** Pins an algorithm to one pass over {@code in}: no split-K, so no reduction afterwards. */
  private String unsplit(MemorySegment algo, Arena local) {
    MemorySegment value = local.allocate(JAVA_INT);
    value.set(JAVA_INT, 0, 1);
    int status = invoke(configSet, algo, ALGO_CONFIG_SPLITK_NUM, value, 4L);
    if (status == 0) {
      value.set(JAVA_INT, 0, REDUCTION_SCHEME_NONE);
      status = invoke(configSet, algo, ALGO_CONFIG_REDUCTION_SCHEME, value, 4L);
    }
    return status == 0 ? null : "cannot be set to one split (cublasStatus_t " + status + ")";
  }

  /** Why the algorithm cannot run {@code rows} = 1, the tuned count and the largest, or null. */
  private String runsAtEveryRowCount(Linear linear, MemorySegment algo, int tuneRows, Arena local) {
    MemorySegment result = local.allocate(HEURISTIC_BYTES, 8);
    for (int rows : new int[] {1, tuneRows, linear.maxRows}) {
      int status = invoke(algoCheck, handle, desc, linear.weightLayout, linear.x(rows), linear.y(rows), linear.y(rows), algo, result);
      if (status != 0) {
        return "not for " + rows + " rows (cublasLtMatmulAlgoCheck: cublasStatus_t " + status + ")";
      }
      long needs = result.get(JAVA_LONG, HEURISTIC_WORKSPACE);
      if (needs > WORKSPACE_BYTES) {
        return "needs " + needs + " bytes of workspace for " + rows + " rows";
      }
    }
    return null;
  }

  /**
   * Why the algorithm gives one of the first rows of {@code x} times the weight other bits alone,
   * among 9 and among {@code probeRows} rows, or null.
   */
  private String sameBitsAtEveryRowCount(Linear linear, long weight, long x, long y, int probeRows) {
    long rowBytes = (long) linear.out * linear.elementBytes;
    int[] counts = new int[PROBE_ROWS.length];
    MemorySegment[] firstRows = new MemorySegment[PROBE_ROWS.length];
    try (Arena local = Arena.ofConfined()) {
      for (int i = 0; i < counts.length; i++) {
        counts[i] = Math.min(PROBE_ROWS[i], probeRows);
        linear.run(y, x, weight, counts[i]);
        firstRows[i] = local.allocate(Math.min(counts[i], PROBE_ROWS[1]) * rowBytes, 8);
        driver.copyToHostAsync(firstRows[i], y, firstRows[i].byteSize(), stream);
        driver.synchronize(stream);
      }
      MemorySegment most = firstRows[counts.length - 1];
      for (int i = 0; i < counts.length - 1; i++) {
        long at = firstRows[i].mismatch(most.asSlice(0, Math.min(most.byteSize(), firstRows[i].byteSize())));
        if (at >= 0) {
          return String.format(Locale.ROOT, "row %d differs between %d and %d rows", at / rowBytes, counts[i], counts[counts.length - 1]);
        }
      }
    }
    return null;
  }

  /** {@code count} values of a fixed pseudo-random sequence in [-1, 1) at {@code device}, in the model's precision. */
  private void fillRandom(long device, long count, boolean bf16, long seed) {
    Random random = new Random(seed);
    int elementBytes = bf16 ? 2 : 4;
    try (Arena local = Arena.ofConfined()) {
      MemorySegment host = local.allocate(count * elementBytes, 8);
      for (long i = 0; i < count; i++) {
        float v = random.nextFloat() * 2 - 1;
        if (bf16) {
          host.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (Float.floatToRawIntBits(v) >>> 16));
        } else {
          host.setAtIndex(JAVA_FLOAT, i, v);
        }
      }
      driver.copyToDevice(device, host, host.byteSize());
    }
  }

  /** One weight shape's multiply: its algorithm and the matrix layouts of each row count, made as first needed. */
  final class Linear {
    final String name;
    final int out;
    final int in;
    final int maxRows;
    private final int type;
    private final int elementBytes;
    private final MemorySegment weightLayout;
    private final MemorySegment[] xLayouts;
    private final MemorySegment[] yLayouts;
    private MemorySegment algo;

    private Linear(String name, int out, int in, boolean bf16, int maxRows) {
      this.name = name;
      this.out = out;
      this.in = in;
      this.maxRows = maxRows;
      this.type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
      this.elementBytes = bf16 ? 2 : 4;
      this.xLayouts = new MemorySegment[maxRows + 1];
      this.yLayouts = new MemorySegment[maxRows + 1];
      // Column-major, as cuBLAS: W [out, in] row-major is in x out with ld in, read transposed.
      this.weightLayout = layout(in, out);
    }

    /** {@code y[rows, out] = x[rows, in] · weight^T}, on the stream; nothing for 0 rows (a step that samples no row). */
    void run(long y, long x, long weight, int rows) {
      if (rows < 0 || rows > maxRows) {
        throw new IllegalArgumentException(rows + " rows for " + this + ", sized for up to " + maxRows);
      }
      if (rows == 0) {
        return;
      }
      MemorySegment yLayout = y(rows);
      int status;
      try {
        status = (int) matmul.invokeExact(handle, desc, one, weight, weightLayout, x, x(rows), zero, y, yLayout, y, yLayout, algo, workspace,
            WORKSPACE_BYTES, stream);
      } catch (Throwable t) {
        throw CudaDriver.failed("cublasLtMatmul", t);
      }
      if (status != 0 || CudaDriver.SYNC_EACH_LAUNCH) {
        String what = "cublasLtMatmul (" + rows + " rows, " + this + ")";
        check(status, what);
        driver.launched(stream, what);
      }
    }

    private MemorySegment x(int rows) {
      if (xLayouts[rows] == null) {
        xLayouts[rows] = layout(in, rows);
      }
      return xLayouts[rows];
    }

    private MemorySegment y(int rows) {
      if (yLayouts[rows] == null) {
        yLayouts[rows] = layout(out, rows);
      }
      return yLayouts[rows];
    }

    private MemorySegment layout(long rows, long cols) {
      MemorySegment out = arena.allocate(ADDRESS);
      check(invoke(layoutCreate, out, type, rows, cols, rows), "cublasLtMatrixLayoutCreate");
      MemorySegment layout = out.get(ADDRESS, 0);
      resources.add(() -> check(invoke(layoutDestroy, layout), "cublasLtMatrixLayoutDestroy"));
      return layout;
    }

    @Override
    public String toString() {
      return name + " (" + in + " -> " + out + ", " + (type == CUDA_R_16BF ? "bf16" : "f32") + ")";
    }
  }

  @Override
  public void close() {
    try {
      resources.close();
    } finally {
      arena.close();
    }
  }

  /** A call that is not on the hot path (set-up, choice, release), its status returned. */
  static int invoke(MethodHandle handle, Object... args) {
    try {
      return (int) handle.invokeWithArguments(args);
    } catch (RuntimeException | Error e) {
      throw e;
    } catch (Throwable t) {
      throw new CudaException("cuBLAS call failed: " + t);
    }
  }

  static void check(int status, String what) {
    if (status != 0) {
      throw new CudaException(what + " failed: cublasStatus_t " + status);
    }
  }
}
