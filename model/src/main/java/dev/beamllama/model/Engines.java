package dev.beamllama.model;

import dev.beamllama.model.cpu.CpuModelRunner;
import dev.beamllama.model.cuda.CudaModelRunner;
import dev.beamllama.model.cuda.CudaUnavailableException;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import java.util.Locale;
import java.util.logging.Logger;

/** Builds engines for a checkpoint directory. */
public final class Engines {
  private static final Logger LOG = Logger.getLogger(Engines.class.getName());

  /** Which backend runs the model; {@code AUTO} takes CUDA when a GPU is usable, else the CPU. */
  public enum Kind {
    AUTO,
    CPU,
    CUDA;

    public static Kind parse(String value) {
      try {
        return valueOf(value.trim().toUpperCase(Locale.ROOT));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("unknown engine '" + value + "': use auto, cpu or cuda");
      }
    }
  }

  private Engines() {}

  public static LlmEngine create(ModelDirectory model, Kind kind, EngineOptions options) {
    return switch (kind) {
      case CPU -> cpu(model, options);
      case CUDA -> {
        String reason = CudaModelRunner.unavailableReason();
        if (reason != null) {
          throw new CudaUnavailableException("--engine=cuda is unavailable: " + reason + "; use --engine=cpu or auto");
        }
        yield cuda(model, options);
      }
      case AUTO -> {
        String reason = CudaModelRunner.unavailableReason();
        if (reason == null) {
          LOG.info("engine auto: a GPU is usable, using the CUDA engine");
          yield cuda(model, options);
        }
        LOG.info("engine auto: using the CPU engine (no CUDA: " + reason + ")");
        yield cpu(model, options);
      }
    };
  }

  /** The CUDA engine on GPU 0 (CUDA_VISIBLE_DEVICES chooses which). */
  public static LlmEngine cuda(ModelDirectory model, EngineOptions options) {
    SafetensorsCheckpoint weights = model.openWeights();
    try {
      return new LlmEngine(new CudaModelRunner(weights, model.config(), options), options, model.stopTokenIds());
    } catch (RuntimeException e) {
      weights.close();
      throw e;
    }
  }

  /** The pure-Java CPU engine. */
  public static LlmEngine cpu(ModelDirectory model, EngineOptions options) {
    SafetensorsCheckpoint weights = model.openWeights();
    try {
      return new LlmEngine(new CpuModelRunner(weights, model.config(), options), options, model.stopTokenIds());
    } catch (RuntimeException e) {
      weights.close();
      throw e;
    }
  }
}
