package dev.beamllama.model;

import dev.beamllama.model.cpu.CpuModelRunner;
import dev.beamllama.model.cuda.CudaModelRunner;
import dev.beamllama.model.cuda.CudaUnavailableException;
import dev.beamllama.model.engine.EngineContext;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.llama.LlamaWeights;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import java.util.logging.Logger;

/** Builds engines for a checkpoint directory. */
public final class Engines {
  private static final Logger LOG = Logger.getLogger(Engines.class.getName());

  /**
   * Which backend runs the model; {@code AUTO} takes CUDA when a GPU is usable (never an emulated
   * CUDA device: that is test infrastructure), else the CPU.
   */
  public enum Kind {
    AUTO,
    CPU,
    CUDA
  }

  private Engines() {}

  /**
   * The engine {@code kind} takes on this machine, checked to hold the context its job plans with
   * ({@link #context}): a CUDA engine whose cache, sized from the GPU's free memory, holds less
   * fails here, naming the flags to change, rather than fail or cut short records later.
   */
  public static LlmEngine create(ModelDirectory model, Kind kind, EngineOptions options) {
    EngineContext planned = context(model, kind, options);
    if (int8TakesCpu(kind, options)) {
      LOG.info("engine auto: --weights=int8 is a CPU engine option, using the CPU engine");
      kind = Kind.CPU;
    }
    LlmEngine engine = switch (choose(kind, kind == Kind.CPU ? null : CudaModelRunner.probe())) {
      case CUDA -> cuda(model, options);
      default -> cpu(model, options);
    };
    try {
      planned.requireHeldBy(engine.runner());
    } catch (RuntimeException e) {
      engine.close();
      throw e;
    }
    return engine;
  }

  /**
   * The context a job plans with for an engine of {@code kind}, before any engine loads: the
   * smaller of the model's positions and what the KV cache holds of one sequence. The cache's size
   * is known beforehand when {@code --kvCacheBytes} gives it, and for the CPU engine (its default);
   * a CUDA engine left to size its cache from free GPU memory plans with the model's positions,
   * which it must then hold. {@code AUTO} plans as the CPU engine does: the launcher cannot know
   * which backend each worker takes, and a worker's GPU holds at least as much (or fails at load).
   */
  public static EngineContext context(ModelDirectory model, Kind kind, EngineOptions options) {
    boolean bf16;
    try (SafetensorsCheckpoint weights = model.openWeights()) {
      bf16 = options.bf16Activations(LlamaWeights.projectionDtype(weights));
    }
    return EngineContext.of(model.config(), options, bf16, options.plannedKvCacheBytes(kind == Kind.CUDA));
  }

  /**
   * The backend {@code kind} runs on, given what {@code gpu} found (null for {@code CPU}), with the
   * log line that says why. {@code AUTO} takes a usable GPU, never an emulated CUDA device (test
   * infrastructure, slower than the CPU engine); {@code CUDA} takes either, or fails with the reason.
   */
  static Kind choose(Kind kind, CudaModelRunner.Probe gpu) {
    return switch (kind) {
      case CPU -> Kind.CPU;
      case CUDA -> {
        if (!gpu.usable()) {
          throw new CudaUnavailableException("--engine=cuda is unavailable: " + gpu.unavailableReason() + "; use --engine=cpu or auto");
        }
        if (gpu.emulated()) {
          LOG.warning("engine cuda: " + gpu.device() + " is an EMULATED CUDA device (test infrastructure, far slower than the CPU engine)");
        }
        yield Kind.CUDA;
      }
      case AUTO -> {
        if (autoTakesGpu(gpu)) {
          LOG.info("engine auto: a GPU is usable (" + gpu.device() + "), using the CUDA engine");
          yield Kind.CUDA;
        }
        LOG.info("engine auto: using the CPU engine (" + (gpu.usable()
            ? gpu.device() + " is an emulated CUDA device, which only --engine=cuda uses"
            : "no CUDA: " + gpu.unavailableReason()) + ")");
        yield Kind.CPU;
      }
    };
  }

  /** {@code AUTO} with int8 weights, which only the CPU engine has, is the CPU engine on any machine. */
  private static boolean int8TakesCpu(Kind kind, EngineOptions options) {
    return kind == Kind.AUTO && options.weights() == EngineOptions.Weights.INT8;
  }

  private static boolean autoTakesGpu(CudaModelRunner.Probe gpu) {
    return gpu.usable() && !gpu.emulated();
  }

  /**
   * The most sequences an engine of {@code kind} on this machine runs at once, before it loads:
   * {@code maxNumSeqs} when given, else its backend's default at most ({@code AUTO}: the backend
   * this machine's GPU, or its absence, makes it take).
   */
  public static int maxNumSeqsAtMost(Kind kind, EngineOptions options) {
    if (options.maxNumSeqs() > 0) {
      return options.maxNumSeqs();
    }
    boolean cuda = kind == Kind.CUDA || kind == Kind.AUTO && !int8TakesCpu(kind, options) && autoTakesGpu(CudaModelRunner.probe());
    return cuda ? EngineOptions.CUDA_MAX_NUM_SEQS : EngineOptions.CPU_MAX_NUM_SEQS;
  }

  /** The CUDA engine on GPU 0 (CUDA_VISIBLE_DEVICES chooses which). */
  public static LlmEngine cuda(ModelDirectory model, EngineOptions options) {
    SafetensorsCheckpoint weights = model.openWeights();
    try {
      return new LlmEngine(new CudaModelRunner(weights, model.config(), options), model.stopTokenIds());
    } catch (RuntimeException e) {
      weights.close();
      throw e;
    }
  }

  /** The pure-Java CPU engine. */
  public static LlmEngine cpu(ModelDirectory model, EngineOptions options) {
    SafetensorsCheckpoint weights = model.openWeights();
    try {
      return new LlmEngine(new CpuModelRunner(weights, model.config(), options), model.stopTokenIds());
    } catch (RuntimeException e) {
      weights.close();
      throw e;
    }
  }
}
