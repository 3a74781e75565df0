package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.junit.jupiter.api.Test;

/** The Flink options a job runs with unless its command line sets them. */
class FlinkDefaultsTest {
  private static FlinkPipelineOptions defaults(String... args) {
    PipelineOptionsFactory.register(BeamLlamaOptions.class);
    BeamLlamaOptions options = PipelineOptionsFactory.fromArgs(args).as(BeamLlamaOptions.class);
    Main.flinkRunnerDefaults(options, args);
    return options.as(FlinkPipelineOptions.class);
  }

  @Test
  void batchExchangesArePipelinedSoGenerateStartsWithTheFirstTokenizedRecordUnlessGiven() {
    assertEquals("PIPELINED_FORCED", defaults("--runner=FlinkRunner").getExecutionModeForBatch());
    assertEquals("BATCH", defaults("--runner=FlinkRunner", "--executionModeForBatch=BATCH").getExecutionModeForBatch());
  }
}
