package dev.beamllama.model.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.Fixtures;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * What the emulated CUDA device catches that a GPU would let pass or report late, as the engine's
 * own bindings report it: the CUDA error and the call, never a crash or a silent wrong result. A
 * planted out-of-bounds write and a planted bad launch (the emulator's test kernels), a copy outside
 * an allocation, a double free, a call from a thread without the context, and a constructor that
 * fails half way leaking nothing. The sticky fault runs in a JVM of its own: as on a GPU it leaves
 * the context unusable.
 */
class CudaFaultsTest {
  private static final String OUT_OF_BOUNDS = "emu_test_write_past_end";
  private static final String FILL = "emu_test_fill";

  @Test
  void aCopyOutsideAnAllocationAndADoubleFreeAreErrorsNamingTheCall() {
    CudaTestDevice.require();
    CudaDriver driver = CudaDriver.open(0);
    try (Arena arena = Arena.ofConfined()) {
      long buffer = driver.alloc(64);
      MemorySegment host = arena.allocate(128);
      CudaException copy = assertThrows(CudaException.class, () -> driver.copyToDevice(buffer, host, 128));
      assertTrue(copy.getMessage().contains("cuMemcpyHtoD") && copy.getMessage().contains("CUDA_ERROR_INVALID_VALUE"), copy.getMessage());
      driver.copyToDevice(buffer, host, 64); // not sticky: the context goes on
      driver.free(buffer);
      CudaException free = assertThrows(CudaException.class, () -> driver.free(buffer));
      assertTrue(free.getMessage().contains("cuMemFree"), free.getMessage());
    } finally {
      driver.close();
    }
  }

  @Test
  void aCallFromAThreadWithoutTheContextIsAnInvalidContext() throws Exception {
    CudaTestDevice.require();
    CudaDriver driver = CudaDriver.open(0);
    try {
      Throwable[] thrown = new Throwable[1];
      Thread other = new Thread(() -> {
        try {
          driver.alloc(16);
        } catch (Throwable t) {
          thrown[0] = t;
        }
      });
      other.start();
      other.join();
      assertTrue(thrown[0] instanceof CudaException && thrown[0].getMessage().startsWith("cuMemAlloc of 16 bytes failed")
          && thrown[0].getMessage().contains("CUDA_ERROR_INVALID_CONTEXT"), String.valueOf(thrown[0]));
    } finally {
      driver.close();
    }
  }

  @Test
  void aBadLaunchNamesTheKernel() {
    CudaTestDevice.require();
    byte[] image = testKernels();
    CudaDriver driver = CudaDriver.open(0);
    MemorySegment stream = driver.createStream();
    MemorySegment module = driver.loadModule(image);
    try (Arena arena = Arena.ofConfined()) {
      long out = driver.alloc(1024 * Float.BYTES);
      MemorySegment arguments = arguments(arena, out, 1f, 1024);
      MemorySegment fill = driver.function(module, FILL);
      CudaException tooMany = assertThrows(CudaException.class, () -> driver.launch(FILL, fill, 1, 1, 2048, 0, stream, arguments));
      assertTrue(tooMany.getMessage().contains("cuLaunchKernel of " + FILL) && tooMany.getMessage().contains("2048 threads"),
          tooMany.getMessage());
      driver.launch(FILL, fill, 4, 1, 256, 0, stream, arguments); // the context is still usable
      driver.synchronize(stream);
      driver.free(out);
    } finally {
      driver.unloadModule(module);
      driver.destroyStream(stream);
      driver.close();
    }
  }

  /** The planted kernel writes one float past its buffer: a GPU may not notice; the emulated device fails the launch. */
  @Test
  void anOutOfBoundsWriteIsCaughtAndTheDebuggingModeNamesTheKernel() throws Exception {
    CudaTestDevice.require();
    Path image = CudaTestDevice.emulatorDirectory().resolve("test-kernels.fatbin");
    Map<String, String> sync = plantedWrite(image, false);
    assertEquals("ok", sync.get("launch"), sync.toString());
    assertTrue(sync.get("synchronize").contains("CUDA_ERROR_ILLEGAL_ADDRESS") && sync.get("synchronize").contains("BEAM_LLAMA_CUDA_SYNC=1"),
        sync.toString());
    Map<String, String> debug = plantedWrite(image, true);
    assertTrue(debug.get("launch").contains("kernel " + OUT_OF_BOUNDS) && debug.get("launch").contains("CUDA_ERROR_ILLEGAL_ADDRESS"),
        debug.toString());
  }

  @Test
  void aConstructorFailingHalfWayLeaksNothing() {
    CudaTestDevice.require();
    CudaDriver driver = CudaDriver.open(0); // holds the context, so what a runner leaks would stay visible
    try {
      Map<String, Integer> before = liveObjects();
      ModelDirectory model = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-bf16"));
      try (SafetensorsCheckpoint weights = model.openWeights()) {
        // Fails in the KV cache's sizing, after the stream, cuBLASLt (its algorithms chosen), the module and the weights.
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> new CudaModelRunner(weights, model.config(), EngineOptions.defaults().withKvCacheBytes(1)));
        assertTrue(e.getMessage().contains("is less than one KV cache block"), e.getMessage());
      }
      assertEquals(before, liveObjects(), "after a failed constructor");
      new CudaModelRunner(model.openWeights(), model.config(), EngineOptions.defaults()).close(); // closes the checkpoint too
      assertEquals(before, liveObjects(), "after a runner's close");
    } finally {
      driver.close();
    }
  }

  @Test
  void decodeStepsRunAsGraphsThatTheRunnerReleases() {
    CudaTestDevice.require();
    CudaDriver driver = CudaDriver.open(0);
    try {
      Map<String, Integer> before = liveObjects();
      ModelDirectory model = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-bf16"));
      EngineOptions options = EngineOptions.defaults();
      try (LlmEngine engine = new LlmEngine(new CudaModelRunner(model.openWeights(), model.config(), options), new int[0])) {
        List<CompletableFuture<GenerationResult>> running = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
          running.add(engine.submit(new GenerationRequest("r" + i, new int[] {1, 5 + i, 9, 33}, SamplingParams.greedy(6 + i))));
        }
        running.forEach(CompletableFuture::join);
        // Decode steps of 1 to 3 sequences: a graph per size, captured once and launched for every step of that size.
        int graphs = liveObjects().get("graph_execs") - before.get("graph_execs");
        assertTrue(graphs >= 1 && graphs <= 3, graphs + " decode graphs while the runner is open");
      }
      assertEquals(before, liveObjects(), "after the runner's close");
    } finally {
      driver.close();
    }
  }

  /** The emulated device's count of each kind of live object, cuBLAS handles and cuBLASLt objects (emulator-only queries). */
  private static Map<String, Integer> liveObjects() {
    Path emulator = CudaTestDevice.emulatorDirectory();
    Linker linker = Linker.nativeLinker();
    Arena arena = Arena.global();
    SymbolLookup cuda = SymbolLookup.libraryLookup(emulator.resolve("libcuda.so.1"), arena);
    SymbolLookup cublas = SymbolLookup.libraryLookup(emulator.resolve("libcublas.so.13"), arena);
    SymbolLookup cublasLt = SymbolLookup.libraryLookup(emulator.resolve("libcublasLt.so.13"), arena);
    MethodHandle objects = linker.downcallHandle(cuda.find("cuEmulatorLiveObjects").orElseThrow(),
        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
    MethodHandle handles = linker.downcallHandle(cublas.find("cublasEmulatorLiveHandles").orElseThrow(),
        FunctionDescriptor.of(ValueLayout.JAVA_INT));
    MethodHandle ltObjects = linker.downcallHandle(cublasLt.find("cublasLtEmulatorLiveObjects").orElseThrow(),
        FunctionDescriptor.of(ValueLayout.JAVA_INT));
    Map<String, Integer> live = new LinkedHashMap<>();
    try (Arena local = Arena.ofConfined()) {
      for (String kind : List.of("allocations", "allocated_bytes", "host_allocations", "streams", "events", "modules", "graphs", "graph_execs")) {
        live.put(kind, (int) objects.invoke(0, local.allocateFrom(kind)));
      }
      live.put("cublas_handles", (int) handles.invoke());
      live.put("cublaslt_objects", (int) ltObjects.invoke());
    } catch (Throwable t) {
      throw new AssertionError("the emulator's live-object query failed", t);
    }
    return live;
  }

  private static byte[] testKernels() {
    Path image = CudaTestDevice.emulatorDirectory().resolve("test-kernels.fatbin");
    try {
      return Files.readAllBytes(image);
    } catch (IOException e) {
      throw new AssertionError("the emulator's build has no " + image + " (nvcc makes it)", e);
    }
  }

  /** A kernel parameter array for (pointer, float, int). */
  private static MemorySegment arguments(Arena arena, long pointer, float value, int n) {
    MemorySegment slots = arena.allocate(24, 8);
    slots.set(ValueLayout.JAVA_LONG, 0, pointer);
    slots.set(ValueLayout.JAVA_FLOAT, 8, value);
    slots.set(ValueLayout.JAVA_INT, 16, n);
    MemorySegment pointers = arena.allocate(ValueLayout.ADDRESS, 3);
    for (int i = 0; i < 3; i++) {
      pointers.setAtIndex(ValueLayout.ADDRESS, i, slots.asSlice(8L * i, 8));
    }
    return pointers;
  }

  /** Launches the planted write in a child JVM ({@code BEAM_LLAMA_CUDA_SYNC} on or off); what the launch and the synchronisation said. */
  private static Map<String, String> plantedWrite(Path image, boolean debug) throws IOException, InterruptedException {
    Path java = Path.of(System.getProperty("java.home"), "bin", "java");
    ProcessBuilder builder = new ProcessBuilder(List.of(java.toString(), "--enable-native-access=ALL-UNNAMED", "-cp",
        System.getProperty("java.class.path"), PlantedWrite.class.getName(), image.toString()));
    if (debug) {
      builder.environment().put("BEAM_LLAMA_CUDA_SYNC", "1");
    } else {
      builder.environment().remove("BEAM_LLAMA_CUDA_SYNC");
    }
    builder.redirectErrorStream(true);
    Process process = builder.start();
    String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the child JVM did not finish");
    Map<String, String> said = new LinkedHashMap<>();
    for (String line : out.lines().toList()) {
      int colon = line.indexOf(": ");
      if (line.startsWith("launch: ") || line.startsWith("synchronize: ")) {
        said.put(line.substring(0, colon), line.substring(colon + 2));
      }
    }
    assertTrue(said.containsKey("launch"), out);
    return said;
  }

  /** In a child JVM: the planted kernel writes one float past a 256-float buffer. */
  public static final class PlantedWrite {
    public static void main(String[] args) throws IOException {
      CudaDriver driver = CudaDriver.open(0);
      MemorySegment stream = driver.createStream();
      MemorySegment module = driver.loadModule(Files.readAllBytes(Path.of(args[0])));
      try (Arena arena = Arena.ofConfined()) {
        long out = driver.alloc(256 * Float.BYTES);
        MemorySegment slots = arena.allocate(24, 8);
        slots.set(ValueLayout.JAVA_LONG, 0, out);
        slots.set(ValueLayout.JAVA_INT, 8, 256);
        slots.set(ValueLayout.JAVA_INT, 16, 1);
        MemorySegment pointers = arena.allocate(ValueLayout.ADDRESS, 3);
        for (int i = 0; i < 3; i++) {
          pointers.setAtIndex(ValueLayout.ADDRESS, i, slots.asSlice(8L * i, 8));
        }
        try {
          driver.launch(OUT_OF_BOUNDS, driver.function(module, OUT_OF_BOUNDS), 1, 1, 256, 0, stream, pointers);
          System.out.println("launch: ok");
        } catch (CudaException e) {
          System.out.println("launch: " + e.getMessage());
        }
        try {
          driver.synchronize(stream);
          System.out.println("synchronize: ok");
        } catch (CudaException e) {
          System.out.println("synchronize: " + e.getMessage());
        }
      }
    }
  }
}
