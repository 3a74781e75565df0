package dev.beamllama.model.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

/**
 * The forward pass's multiply, {@code y = x W^T} for row-major activations {@code x [rows, in]} and
 * a torch Linear weight {@code W [out, in]}, through {@code cublasGemmEx}: cuBLAS's own choice of
 * algorithm for each call's shape. Not the engine's ({@link CublasLt}, one algorithm per weight
 * shape): the reference the kernel checks compare it with, in bits (is a row the same alone and in
 * a batch?) and in time (what batch invariance costs).
 */
final class Cublas implements AutoCloseable {
  private static final int CUBLAS_OP_N = 0;
  private static final int CUBLAS_OP_T = 1;
  private static final int CUDA_R_32F = 0;
  private static final int CUDA_R_16BF = 14;
  private static final int CUBLAS_COMPUTE_32F = 68;
  private static final int CUBLAS_GEMM_DEFAULT = -1;

  private final CudaDriver driver;
  private final MemorySegment stream;
  private final MethodHandle gemmEx;
  private final MethodHandle getVersion;
  private final MethodHandle destroy;
  private final MemorySegment handle;
  private final MemorySegment one;
  private final MemorySegment zero;

  /** A cuBLAS handle whose work goes to {@code stream}. */
  Cublas(CudaDriver driver, MemorySegment stream) {
    this.driver = driver;
    this.stream = stream;
    Arena arena = Arena.global();
    SymbolLookup lib = CudaLibraries.cublas(arena);
    MethodHandle create = CublasLt.downcall(lib, "cuBLAS", "cublasCreate_v2", ADDRESS);
    MethodHandle setStream = CublasLt.downcall(lib, "cuBLAS", "cublasSetStream_v2", ADDRESS, ADDRESS);
    destroy = CublasLt.downcall(lib, "cuBLAS", "cublasDestroy_v2", ADDRESS);
    getVersion = CublasLt.downcall(lib, "cuBLAS", "cublasGetVersion_v2", ADDRESS, ADDRESS);
    gemmEx = CublasLt.downcall(lib, "cuBLAS", "cublasGemmEx", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG,
        JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
    MemorySegment out = arena.allocate(ADDRESS);
    CublasLt.check(CublasLt.invoke(create, out), "cublasCreate");
    handle = out.get(ADDRESS, 0);
    try {
      CublasLt.check(CublasLt.invoke(setStream, handle, stream), "cublasSetStream");
    } catch (CudaException e) {
      int status = CublasLt.invoke(destroy, handle);
      if (status != 0) {
        e.addSuppressed(new CudaException("cublasDestroy failed: cublasStatus_t " + status));
      }
      throw e;
    }
    one = arena.allocate(JAVA_FLOAT);
    one.set(JAVA_FLOAT, 0, 1f);
    zero = arena.allocate(JAVA_FLOAT);
    zero.set(JAVA_FLOAT, 0, 0f);
  }

  /**
   * {@code y[rows, out] = x[rows, in] · w[out, in]^T}. cuBLAS is column-major, so this computes
   * {@code y^T = w · x^T}: w read transposed, x as is.
   */
  void linear(long y, long x, long w, int rows, int in, int out, boolean bf16) {
    int type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    int rc;
    try {
      rc = (int) gemmEx.invokeExact(handle, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, one, w, type, in, x, type, in, zero, y, type, out,
          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    } catch (Throwable t) {
      throw CudaDriver.failed("cublasGemmEx", t);
    }
    if (rc != 0 || CudaDriver.SYNC_EACH_LAUNCH) {
      String what = "cublasGemmEx (" + rows + " x " + in + " by " + out + ")";
      CublasLt.check(rc, what);
      driver.launched(stream, what);
    }
  }

  /** The library's version, as {@code major.minor.patch} (cuBLAS encodes it as major * 10000 + minor * 100 + patch). */
  String version() {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment value = local.allocate(JAVA_INT);
      CublasLt.check(CublasLt.invoke(getVersion, handle, value), "cublasGetVersion");
      int v = value.get(JAVA_INT, 0);
      return v / 10000 + "." + v % 10000 / 100 + "." + v % 100;
    }
  }

  @Override
  public void close() {
    CublasLt.check(CublasLt.invoke(destroy, handle), "cublasDestroy");
  }
}
