package dev.beamllama.model.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

/**
 * The CUDA driver API calls the engine makes, through FFM: one device, its primary context, device
 * memory, modules loaded from the build's fatbin, streams and kernel launches. Every call checks its
 * {@code CUresult} and throws {@link CudaException} naming the call and the error.
 *
 * <p>Device pointers are {@code long}s ({@code CUdeviceptr}); handles are {@link MemorySegment}s.
 */
public final class CudaDriver {
  private static final Linker LINKER = Linker.nativeLinker();
  private static final int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
  private static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
  private static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
  /**
   * Debugging aid: with {@code BEAM_LLAMA_CUDA_SYNC=1} the engine waits for every kernel and GEMM
   * right after launching it, so an asynchronous fault (an illegal address in a kernel) is reported
   * by the call that caused it instead of by a later synchronisation. Slow; for diagnosis only.
   */
  static final boolean SYNC_EACH_LAUNCH = "1".equals(System.getenv("BEAM_LLAMA_CUDA_SYNC"));

  private final Arena arena = Arena.ofAuto();
  private final MethodHandle cuInit;
  private final MethodHandle cuDeviceGetCount;
  private final MethodHandle cuDeviceGet;
  private final MethodHandle cuDeviceGetName;
  private final MethodHandle cuDeviceGetPCIBusId;
  private final MethodHandle cuDeviceGetAttribute;
  private final MethodHandle cuDevicePrimaryCtxRetain;
  private final MethodHandle cuDevicePrimaryCtxRelease;
  private final MethodHandle cuCtxSetCurrent;
  private final MethodHandle cuMemGetInfo;
  private final MethodHandle cuMemAlloc;
  private final MethodHandle cuMemFree;
  private final MethodHandle cuMemAllocHost;
  private final MethodHandle cuMemFreeHost;
  private final MethodHandle cuMemcpyHtoD;
  private final MethodHandle cuMemcpyDtoH;
  private final MethodHandle cuMemcpyHtoDAsync;
  private final MethodHandle cuMemcpyDtoHAsync;
  private final MethodHandle cuMemcpyDtoDAsync;
  private final MethodHandle cuMemsetD8;
  private final MethodHandle cuModuleLoadData;
  private final MethodHandle cuModuleUnload;
  private final MethodHandle cuModuleGetFunction;
  private final MethodHandle cuFuncSetAttribute;
  private final MethodHandle cuLaunchKernel;
  private final MethodHandle cuStreamCreate;
  private final MethodHandle cuStreamSynchronize;
  private final MethodHandle cuStreamDestroy;
  private final MethodHandle cuGetErrorName;
  private final MethodHandle cuDriverGetVersion;
  private final MethodHandle cuEventCreate;
  private final MethodHandle cuEventRecord;
  private final MethodHandle cuEventSynchronize;
  private final MethodHandle cuEventElapsedTime;
  private final MethodHandle cuEventDestroy;
  private final MethodHandle cuStreamBeginCapture;
  private final MethodHandle cuStreamEndCapture;
  private final MethodHandle cuGraphInstantiate;
  private final MethodHandle cuGraphLaunch;
  private final MethodHandle cuGraphExecDestroy;
  private final MethodHandle cuGraphDestroy;

  private int device = -1;
  private MemorySegment context = MemorySegment.NULL;

  private CudaDriver(SymbolLookup lib) {
    cuInit = handle(lib, "cuInit", JAVA_INT);
    cuDeviceGetCount = handle(lib, "cuDeviceGetCount", ADDRESS);
    cuDeviceGet = handle(lib, "cuDeviceGet", ADDRESS, JAVA_INT);
    cuDeviceGetName = handle(lib, "cuDeviceGetName", ADDRESS, JAVA_INT, JAVA_INT);
    cuDeviceGetPCIBusId = handle(lib, "cuDeviceGetPCIBusId", ADDRESS, JAVA_INT, JAVA_INT);
    cuDeviceGetAttribute = handle(lib, "cuDeviceGetAttribute", ADDRESS, JAVA_INT, JAVA_INT);
    cuDevicePrimaryCtxRetain = handle(lib, "cuDevicePrimaryCtxRetain", ADDRESS, JAVA_INT);
    cuDevicePrimaryCtxRelease = handle(lib, "cuDevicePrimaryCtxRelease_v2", JAVA_INT);
    cuCtxSetCurrent = handle(lib, "cuCtxSetCurrent", ADDRESS);
    cuMemGetInfo = handle(lib, "cuMemGetInfo_v2", ADDRESS, ADDRESS);
    cuMemAlloc = handle(lib, "cuMemAlloc_v2", ADDRESS, JAVA_LONG);
    cuMemFree = handle(lib, "cuMemFree_v2", JAVA_LONG);
    cuMemAllocHost = handle(lib, "cuMemAllocHost_v2", ADDRESS, JAVA_LONG);
    cuMemFreeHost = handle(lib, "cuMemFreeHost", ADDRESS);
    cuMemcpyHtoD = handle(lib, "cuMemcpyHtoD_v2", JAVA_LONG, ADDRESS, JAVA_LONG);
    cuMemcpyDtoH = handle(lib, "cuMemcpyDtoH_v2", ADDRESS, JAVA_LONG, JAVA_LONG);
    cuMemcpyHtoDAsync = handle(lib, "cuMemcpyHtoDAsync_v2", JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS);
    cuMemcpyDtoHAsync = handle(lib, "cuMemcpyDtoHAsync_v2", ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS);
    cuMemcpyDtoDAsync = handle(lib, "cuMemcpyDtoDAsync_v2", JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS);
    cuMemsetD8 = handle(lib, "cuMemsetD8_v2", JAVA_LONG, JAVA_INT, JAVA_LONG);
    cuModuleLoadData = handle(lib, "cuModuleLoadData", ADDRESS, ADDRESS);
    cuModuleUnload = handle(lib, "cuModuleUnload", ADDRESS);
    cuModuleGetFunction = handle(lib, "cuModuleGetFunction", ADDRESS, ADDRESS, ADDRESS);
    cuFuncSetAttribute = handle(lib, "cuFuncSetAttribute", ADDRESS, JAVA_INT, JAVA_INT);
    cuLaunchKernel = handle(lib, "cuLaunchKernel", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
        ADDRESS, ADDRESS, ADDRESS);
    cuStreamCreate = handle(lib, "cuStreamCreate", ADDRESS, JAVA_INT);
    cuStreamSynchronize = handle(lib, "cuStreamSynchronize", ADDRESS);
    cuStreamDestroy = handle(lib, "cuStreamDestroy_v2", ADDRESS);
    cuGetErrorName = handle(lib, "cuGetErrorName", JAVA_INT, ADDRESS);
    cuDriverGetVersion = handle(lib, "cuDriverGetVersion", ADDRESS);
    cuEventCreate = handle(lib, "cuEventCreate", ADDRESS, JAVA_INT);
    cuEventRecord = handle(lib, "cuEventRecord", ADDRESS, ADDRESS);
    cuEventSynchronize = handle(lib, "cuEventSynchronize", ADDRESS);
    // CUDA 13's header maps cuEventElapsedTime to _v2; drivers before 12.8 have only the first version.
    cuEventElapsedTime = lib.find("cuEventElapsedTime_v2").isPresent() ? handle(lib, "cuEventElapsedTime_v2", ADDRESS, ADDRESS, ADDRESS)
        : handle(lib, "cuEventElapsedTime", ADDRESS, ADDRESS, ADDRESS);
    cuEventDestroy = handle(lib, "cuEventDestroy_v2", ADDRESS);
    cuStreamBeginCapture = handle(lib, "cuStreamBeginCapture_v2", ADDRESS, JAVA_INT);
    cuStreamEndCapture = handle(lib, "cuStreamEndCapture", ADDRESS, ADDRESS);
    cuGraphInstantiate = handle(lib, "cuGraphInstantiateWithFlags", ADDRESS, ADDRESS, JAVA_LONG);
    cuGraphLaunch = handle(lib, "cuGraphLaunch", ADDRESS, ADDRESS);
    cuGraphExecDestroy = handle(lib, "cuGraphExecDestroy", ADDRESS);
    cuGraphDestroy = handle(lib, "cuGraphDestroy", ADDRESS);
  }

  private static MethodHandle handle(SymbolLookup lib, String name, MemoryLayout... args) {
    MemorySegment symbol = lib.find(name).orElseThrow(() -> new CudaUnavailableException(
        "the NVIDIA driver library has no " + name + ": the driver is too old for this engine"));
    return LINKER.downcallHandle(symbol, FunctionDescriptor.of(JAVA_INT, args));
  }

  /** Loads the driver, initialises it and makes device {@code ordinal}'s primary context current. */
  public static CudaDriver open(int ordinal) {
    CudaDriver driver = new CudaDriver(CudaLibraries.driver(Arena.global()));
    try (Arena local = Arena.ofConfined()) {
      driver.check(call(driver.cuInit, "cuInit", 0), "cuInit");
      MemorySegment count = local.allocate(JAVA_INT);
      driver.check(call(driver.cuDeviceGetCount, "cuDeviceGetCount", count), "cuDeviceGetCount");
      if (count.get(JAVA_INT, 0) <= ordinal) {
        throw new CudaUnavailableException("no CUDA device " + ordinal + ": the driver sees " + count.get(JAVA_INT, 0) + " GPU(s)");
      }
      MemorySegment dev = local.allocate(JAVA_INT);
      driver.check(call(driver.cuDeviceGet, "cuDeviceGet", dev, ordinal), "cuDeviceGet");
      MemorySegment ctx = local.allocate(ADDRESS);
      driver.check(call(driver.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", ctx, dev.get(JAVA_INT, 0)), "cuDevicePrimaryCtxRetain");
      driver.device = dev.get(JAVA_INT, 0); // from here on close() releases the context
      driver.context = ctx.get(ADDRESS, 0);
      driver.makeCurrent();
      return driver;
    } catch (CudaException e) {
      CudaUnavailableException unavailable = new CudaUnavailableException("the CUDA driver cannot start: " + e.getMessage(), e);
      try {
        driver.close();
      } catch (CudaException release) {
        unavailable.addSuppressed(release);
      }
      throw unavailable;
    }
  }

  /** The context is per thread: the engine's loop thread calls this before each step. */
  public void makeCurrent() {
    check(call(cuCtxSetCurrent, "cuCtxSetCurrent", context), "cuCtxSetCurrent");
  }

  public String deviceName() {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment name = local.allocate(256);
      check(call(cuDeviceGetName, "cuDeviceGetName", name, 256, device), "cuDeviceGetName");
      return name.getString(0);
    }
  }

  /**
   * The device's PCI address ({@code 0000:19:00.0}): which physical GPU this process got, whatever
   * ordinal {@code CUDA_VISIBLE_DEVICES} gave it (nvidia-smi shows the same address, its domain
   * written with 8 digits).
   */
  public String pciBusId() {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment id = local.allocate(64);
      check(call(cuDeviceGetPCIBusId, "cuDeviceGetPCIBusId", id, 64, device), "cuDeviceGetPCIBusId");
      return id.getString(0);
    }
  }

  /**
   * Whether the device is an emulated one (test infrastructure: {@code scripts/build-cuda-emulator}),
   * which names itself so: the engine runs on it only when asked for by name, never by auto.
   */
  public boolean emulated() {
    return deviceName().toLowerCase(java.util.Locale.ROOT).contains("emulator");
  }

  /** Compute capability as major * 10 + minor (90 for an H100). */
  public int computeCapability() {
    return attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR) * 10 + attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  }

  /** The device's streaming multiprocessors (132 on an H100 SXM). */
  public int multiprocessors() {
    return attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  }

  private int attribute(int attribute) {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment value = local.allocate(JAVA_INT);
      check(call(cuDeviceGetAttribute, "cuDeviceGetAttribute", value, attribute, device), "cuDeviceGetAttribute");
      return value.get(JAVA_INT, 0);
    }
  }

  /** {free, total} bytes of device memory. */
  public long[] memoryInfo() {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment free = local.allocate(JAVA_LONG);
      MemorySegment total = local.allocate(JAVA_LONG);
      check(call(cuMemGetInfo, "cuMemGetInfo", free, total), "cuMemGetInfo");
      return new long[] {free.get(JAVA_LONG, 0), total.get(JAVA_LONG, 0)};
    }
  }

  public long alloc(long bytes) {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment ptr = local.allocate(JAVA_LONG);
      int rc = call(cuMemAlloc, "cuMemAlloc", ptr, Math.max(bytes, 1));
      if (rc != 0) {
        String free;
        try {
          long[] info = memoryInfo();
          free = " (" + info[0] + " of " + info[1] + " bytes free)";
        } catch (CudaException e) {
          free = ""; // the failure that failed the allocation (no context, a sticky fault) fails this too
        }
        throw new CudaException("cuMemAlloc of " + bytes + " bytes failed: " + errorName(rc) + free);
      }
      return ptr.get(JAVA_LONG, 0);
    }
  }

  public void free(long pointer) {
    if (pointer != 0) {
      check(call(cuMemFree, "cuMemFree", pointer), "cuMemFree");
    }
  }

  /** Page-locked host memory, so copies to and from the device run asynchronously at full speed. */
  public MemorySegment allocHost(long bytes) {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment ptr = local.allocate(ADDRESS);
      check(call(cuMemAllocHost, "cuMemAllocHost", ptr, bytes), "cuMemAllocHost");
      return ptr.get(ADDRESS, 0).reinterpret(bytes);
    }
  }

  public void freeHost(MemorySegment host) {
    check(call(cuMemFreeHost, "cuMemFreeHost", host), "cuMemFreeHost");
  }

  public void copyToDevice(long device, MemorySegment host, long bytes) {
    check(call(cuMemcpyHtoD, "cuMemcpyHtoD", device, host, bytes), "cuMemcpyHtoD");
  }

  public void copyToHost(MemorySegment host, long device, long bytes) {
    check(call(cuMemcpyDtoH, "cuMemcpyDtoH", host, device, bytes), "cuMemcpyDtoH");
  }

  public void copyToDeviceAsync(long device, MemorySegment host, long bytes, MemorySegment stream) {
    int rc;
    try {
      rc = (int) cuMemcpyHtoDAsync.invokeExact(device, host, bytes, stream);
    } catch (Throwable t) {
      throw failed("cuMemcpyHtoDAsync", t);
    }
    check(rc, "cuMemcpyHtoDAsync");
  }

  public void copyOnDeviceAsync(long to, long from, long bytes, MemorySegment stream) {
    int rc;
    try {
      rc = (int) cuMemcpyDtoDAsync.invokeExact(to, from, bytes, stream);
    } catch (Throwable t) {
      throw failed("cuMemcpyDtoDAsync", t);
    }
    check(rc, "cuMemcpyDtoDAsync");
  }

  public void copyToHostAsync(MemorySegment host, long device, long bytes, MemorySegment stream) {
    int rc;
    try {
      rc = (int) cuMemcpyDtoHAsync.invokeExact(host, device, bytes, stream);
    } catch (Throwable t) {
      throw failed("cuMemcpyDtoHAsync", t);
    }
    check(rc, "cuMemcpyDtoHAsync");
  }

  public void zero(long device, long bytes) {
    check(call(cuMemsetD8, "cuMemsetD8", device, 0, bytes), "cuMemsetD8");
  }

  public MemorySegment loadModule(byte[] image) {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment data = arena.allocate(image.length + 1L, 16);
      MemorySegment.copy(image, 0, data, JAVA_BYTE, 0, image.length);
      MemorySegment module = local.allocate(ADDRESS);
      int rc = call(cuModuleLoadData, "cuModuleLoadData", module, data);
      if (rc != 0) {
        throw new CudaUnavailableException("cannot load the engine's kernels on " + deviceName() + " (compute capability "
            + computeCapability() + "): cuModuleLoadData " + errorName(rc) + "; the build carries sm_80-sm_90 code and compute_90 PTX");
      }
      return module.get(ADDRESS, 0);
    }
  }

  public void unloadModule(MemorySegment module) {
    check(call(cuModuleUnload, "cuModuleUnload", module), "cuModuleUnload");
  }

  public MemorySegment function(MemorySegment module, String name) {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment function = local.allocate(ADDRESS);
      int rc = call(cuModuleGetFunction, "cuModuleGetFunction", function, module, local.allocateFrom(name));
      if (rc != 0) {
        throw new CudaUnavailableException("the engine's kernels have no " + name + " (" + errorName(rc) + "): the fatbin is from another build");
      }
      return function.get(ADDRESS, 0);
    }
  }

  /** Lets {@code function} use more than the default 48 KB of dynamic shared memory. */
  public void setMaxDynamicSharedMemory(MemorySegment function, int bytes) {
    final int maxDynamicSharedSizeBytes = 8; // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    check(call(cuFuncSetAttribute, "cuFuncSetAttribute", function, maxDynamicSharedSizeBytes, bytes), "cuFuncSetAttribute");
  }

  /**
   * Launches kernel {@code name} ({@code function}); {@code arguments} is its parameter array (a
   * pointer per parameter).
   */
  public void launch(String name, MemorySegment function, int gridX, int gridY, int blockX, int sharedBytes, MemorySegment stream,
      MemorySegment arguments) {
    int rc;
    try {
      // invokeExact: the per-step hot path, without invokeWithArguments' boxing and argument array.
      rc = (int) cuLaunchKernel.invokeExact(function, gridX, gridY, 1, blockX, 1, 1, sharedBytes, stream, arguments, MemorySegment.NULL);
    } catch (Throwable t) {
      throw failed("cuLaunchKernel", t);
    }
    if (rc != 0) {
      throw new CudaException("cuLaunchKernel of " + name + " (grid " + gridX + " x " + gridY + ", " + blockX + " threads, " + sharedBytes
          + " bytes of shared memory) failed: " + errorName(rc));
    }
    if (SYNC_EACH_LAUNCH) {
      launched(stream, "kernel " + name);
    }
  }

  /** After an asynchronous launch ({@code what}: a kernel or a GEMM), waits for it: the debugging mode, {@link #SYNC_EACH_LAUNCH}. */
  void launched(MemorySegment stream, String what) {
    check(call(cuStreamSynchronize, "cuStreamSynchronize", stream), what);
  }

  public MemorySegment createStream() {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment stream = local.allocate(ADDRESS);
      check(call(cuStreamCreate, "cuStreamCreate", stream, 0), "cuStreamCreate");
      return stream.get(ADDRESS, 0);
    }
  }

  public void synchronize(MemorySegment stream) {
    int rc;
    try {
      rc = (int) cuStreamSynchronize.invokeExact(stream);
    } catch (Throwable t) {
      throw failed("cuStreamSynchronize", t);
    }
    checkQueuedWork("cuStreamSynchronize", rc);
  }

  /** Waits until the work recorded before {@code event} is done (and the stream's work after it may still run). */
  public void synchronizeEvent(MemorySegment event) {
    int rc;
    try {
      rc = (int) cuEventSynchronize.invokeExact(event);
    } catch (Throwable t) {
      throw failed("cuEventSynchronize", t);
    }
    checkQueuedWork("cuEventSynchronize", rc);
  }

  /** A wait's result: an error there is queued work's (a kernel, GEMM or copy), which the wait only reports. */
  private void checkQueuedWork(String call, int rc) {
    if (rc != 0) {
      throw new CudaException(call + " failed: " + errorName(rc) + ": an earlier kernel, GEMM or copy on the stream failed"
          + (SYNC_EACH_LAUNCH ? "" : " (rerun with BEAM_LLAMA_CUDA_SYNC=1 to name it)"));
    }
  }

  public void destroyStream(MemorySegment stream) {
    check(call(cuStreamDestroy, "cuStreamDestroy", stream), "cuStreamDestroy");
  }

  /** The driver's CUDA version as major * 1000 + minor * 10 (13000 for CUDA 13.0). */
  public int driverVersion() {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment version = local.allocate(JAVA_INT);
      check(call(cuDriverGetVersion, "cuDriverGetVersion", version), "cuDriverGetVersion");
      return version.get(JAVA_INT, 0);
    }
  }

  /**
   * What {@code work} queues on {@code stream}, captured into an executable graph instead of run
   * (nothing runs until {@link #launchGraph}). Capture is thread-local: other threads' CUDA calls
   * are not affected. When {@code work} throws, the capture ends and nothing is kept.
   */
  public MemorySegment captureGraph(MemorySegment stream, Runnable work) {
    final int threadLocalCapture = 1; // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
    check(call(cuStreamBeginCapture, "cuStreamBeginCapture", stream, threadLocalCapture), "cuStreamBeginCapture");
    MemorySegment graph;
    try (Arena local = Arena.ofConfined()) {
      MemorySegment out = local.allocate(ADDRESS);
      try {
        work.run();
      } catch (RuntimeException | Error e) {
        int rc = call(cuStreamEndCapture, "cuStreamEndCapture", stream, out);
        if (rc == 0 && !out.get(ADDRESS, 0).equals(MemorySegment.NULL)) {
          call(cuGraphDestroy, "cuGraphDestroy", out.get(ADDRESS, 0));
        }
        throw e;
      }
      check(call(cuStreamEndCapture, "cuStreamEndCapture", stream, out), "cuStreamEndCapture");
      graph = out.get(ADDRESS, 0);
      try {
        check(call(cuGraphInstantiate, "cuGraphInstantiateWithFlags", out, graph, 0L), "cuGraphInstantiateWithFlags");
        return out.get(ADDRESS, 0);
      } finally {
        check(call(cuGraphDestroy, "cuGraphDestroy", graph), "cuGraphDestroy");
      }
    }
  }

  public void launchGraph(MemorySegment graph, MemorySegment stream) {
    int rc;
    try {
      rc = (int) cuGraphLaunch.invokeExact(graph, stream);
    } catch (Throwable t) {
      throw failed("cuGraphLaunch", t);
    }
    check(rc, "cuGraphLaunch");
  }

  public void destroyGraph(MemorySegment graph) {
    check(call(cuGraphExecDestroy, "cuGraphExecDestroy", graph), "cuGraphExecDestroy");
  }

  /** An event for timing work on a stream ({@link #elapsedMillis}) or waiting for part of it ({@link #synchronizeEvent}). */
  public MemorySegment createEvent() {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment event = local.allocate(ADDRESS);
      check(call(cuEventCreate, "cuEventCreate", event, 0), "cuEventCreate");
      return event.get(ADDRESS, 0);
    }
  }

  public void recordEvent(MemorySegment event, MemorySegment stream) {
    check(call(cuEventRecord, "cuEventRecord", event, stream), "cuEventRecord");
  }

  /** Milliseconds of device time between two recorded events, once {@code end} has completed. */
  public float elapsedMillis(MemorySegment start, MemorySegment end) {
    check(call(cuEventSynchronize, "cuEventSynchronize", end), "cuEventSynchronize");
    try (Arena local = Arena.ofConfined()) {
      MemorySegment millis = local.allocate(JAVA_FLOAT);
      check(call(cuEventElapsedTime, "cuEventElapsedTime", millis, start, end), "cuEventElapsedTime");
      return millis.get(JAVA_FLOAT, 0);
    }
  }

  public void destroyEvent(MemorySegment event) {
    check(call(cuEventDestroy, "cuEventDestroy", event), "cuEventDestroy");
  }

  /** Releases the primary context; the device memory this driver allocated must be freed first. */
  public void close() {
    if (device >= 0) {
      int rc = call(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease", device);
      device = -1;
      check(rc, "cuDevicePrimaryCtxRelease");
    }
  }

  String errorName(int rc) {
    try (Arena local = Arena.ofConfined()) {
      MemorySegment name = local.allocate(ADDRESS);
      int status = call(cuGetErrorName, "cuGetErrorName", rc, name);
      return status == 0 ? name.get(ADDRESS, 0).reinterpret(128).getString(0) + " (" + rc + ")" : "CUresult " + rc;
    }
  }

  void check(int rc, String what) {
    if (rc != 0) {
      throw new CudaException(what + " failed: " + errorName(rc));
    }
  }

  /** What an exact invocation's failure becomes: an unchecked exception as it is, an Error rethrown. */
  static RuntimeException failed(String name, Throwable t) {
    if (t instanceof Error e) {
      throw e;
    }
    return t instanceof RuntimeException r ? r : new CudaException(name + ": " + t);
  }

  private static int call(MethodHandle handle, String name, Object... args) {
    try {
      return (int) handle.invokeWithArguments(args);
    } catch (Throwable t) {
      throw failed(name, t);
    }
  }
}
