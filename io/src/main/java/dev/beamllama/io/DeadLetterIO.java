package dev.beamllama.io;

import org.apache.beam.sdk.io.TextIO;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PDone;
import org.apache.beam.sdk.values.TypeDescriptors;

/**
 * Writes dead letters as JSON Lines under a prefix ({@code PREFIX-SSSSS-of-NNNNN.jsonl}), whatever
 * the format of the completions: they are for people to read and fix.
 */
public final class DeadLetterIO {
  private DeadLetterIO() {}

  public static Write write() {
    return new Write(null);
  }

  public static final class Write extends PTransform<PCollection<DeadLetter>, PDone> {
    private final String prefix;

    private Write(String prefix) {
      this.prefix = prefix;
    }

    public Write to(String prefix) {
      return new Write(prefix);
    }

    @Override
    public PDone expand(PCollection<DeadLetter> failures) {
      if (prefix == null) {
        throw new IllegalArgumentException("DeadLetterIO.write() needs to(prefix)");
      }
      return failures
          .apply("ToJson", MapElements.into(TypeDescriptors.strings()).via(CompletionIO::toJson))
          .apply("WriteJsonLines", TextIO.write().to(prefix).withSuffix(RecordFormat.JSONL.extension()));
    }
  }
}
