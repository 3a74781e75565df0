package dev.beamllama.io;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.io.Serializable;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.transforms.WithFailures;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;

/**
 * A record that could not be processed, with where it came from: the source file and its line
 * (JSONL, 1-based) or row (Parquet, 1-based), the id when it is known, the kind of error and a
 * message saying what to fix. Every input record ends as a completion or as one of these.
 *
 * <p>A step that can refuse records returns Beam's {@link WithFailures.Result} with these as its
 * failures: its DoFn sends them to {@link #TAG} and the step wraps its outputs with
 * {@link #result}, so the pipeline can join every step's dead letters and write them together.
 */
@JsonInclude(JsonInclude.Include.ALWAYS)
public record DeadLetter(
    @JsonProperty("source_file") String sourceFile,
    @JsonProperty("line") Long line,
    @JsonProperty("row") Long row,
    @JsonProperty("id") String id,
    @JsonProperty("kind") String kind,
    @JsonProperty("message") String message) implements Serializable {

  /** The output a step's DoFn sends dead letters to, beside its main output. */
  public static final TupleTag<DeadLetter> TAG = new TupleTag<>("deadLetters") {};

  public static DeadLetter of(SourcePosition at, String id, ErrorKind kind, String message) {
    return new DeadLetter(at.file(), at.line(), at.row(), id, kind.label(), message);
  }

  /**
   * The outputs of a DoFn applied with {@code withOutputTags(outputTag, TupleTagList.of(TAG))} as
   * the step's result, coders set: the main output's {@code outputCoder}, JSON for dead letters.
   */
  public static <T> WithFailures.Result<PCollection<T>, DeadLetter> result(
      PCollectionTuple outputs, TupleTag<T> outputTag, Coder<T> outputCoder) {
    outputs.get(outputTag).setCoder(outputCoder);
    outputs.get(TAG).setCoder(JsonCoder.of(DeadLetter.class));
    return WithFailures.Result.of(outputs, outputTag, TAG);
  }
}
