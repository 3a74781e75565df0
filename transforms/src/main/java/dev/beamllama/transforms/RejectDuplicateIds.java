package dev.beamllama.transforms;

import dev.beamllama.io.DeadLetter;
import dev.beamllama.io.ErrorKind;
import dev.beamllama.io.JsonCoder;
import dev.beamllama.io.PromptRecord;
import dev.beamllama.io.SourcePosition;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.VarIntCoder;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.GroupByKey;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.WithFailures;
import org.apache.beam.sdk.transforms.WithKeys;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;
import org.apache.beam.sdk.values.TypeDescriptors;

/**
 * Keeps one record per id: the first by source position (file, then line or row), whatever order
 * the runner read them in; every other record with that id becomes a {@code duplicate_id} dead
 * letter naming where the kept one is.
 *
 * <p>Records are grouped by a hash shard of their id, not by id: a key per record costs the
 * DirectRunner per-key bookkeeping that grows with the input (a 100,000-record job held about 19
 * watermark holds per id), while a few hundred shards keep it flat and still spread the work over
 * a cluster. A shard's group is read once (Flink's groups are not re-iterable) and holds one record
 * per distinct id, and the positions of duplicates, in memory: input size / {@value #SHARDS} records.
 */
public final class RejectDuplicateIds extends PTransform<PCollection<PromptRecord>, WithFailures.Result<PCollection<PromptRecord>, DeadLetter>> {
  private static final TupleTag<PromptRecord> OUTPUT = new TupleTag<>("unique") {};

  /** Groups the ids are spread over. */
  static final int SHARDS = 256;

  static final Comparator<SourcePosition> SOURCE_ORDER = Comparator
      .comparing((SourcePosition p) -> p.file(), Comparator.nullsFirst(Comparator.<String>naturalOrder()))
      .thenComparingLong(p -> p.line() != null ? p.line() : p.row() != null ? p.row() : 0L);

  /** The group an id falls in: {@link SkipCompletedSamples} joins by the same shards. */
  static int shardOf(String id) {
    return Math.floorMod(id.hashCode(), SHARDS);
  }

  public static RejectDuplicateIds create() {
    return new RejectDuplicateIds();
  }

  @Override
  public WithFailures.Result<PCollection<PromptRecord>, DeadLetter> expand(PCollection<PromptRecord> records) {
    PCollection<KV<Integer, Iterable<PromptRecord>>> byShard = records
        .apply("KeyByIdShard", WithKeys.<Integer, PromptRecord>of(r -> shardOf(r.id()))
            .withKeyType(TypeDescriptors.integers()))
        .setCoder(KvCoder.of(VarIntCoder.of(), JsonCoder.of(PromptRecord.class)))
        .apply("GroupByIdShard", GroupByKey.create());
    PCollectionTuple unique = byShard.apply("KeepFirst", ParDo.of(new KeepFirstFn()).withOutputTags(OUTPUT, TupleTagList.of(DeadLetter.TAG)));
    return DeadLetter.result(unique, OUTPUT, JsonCoder.of(PromptRecord.class));
  }

  static final class KeepFirstFn extends DoFn<KV<Integer, Iterable<PromptRecord>>, PromptRecord> {
    @ProcessElement
    public void process(@Element KV<Integer, Iterable<PromptRecord>> shard, MultiOutputReceiver out) {
      Map<String, PromptRecord> first = new LinkedHashMap<>();
      Map<String, List<SourcePosition>> duplicates = new HashMap<>();
      for (PromptRecord r : shard.getValue()) {
        PromptRecord kept = first.putIfAbsent(r.id(), r);
        if (kept == null) {
          continue;
        }
        boolean earlier = SOURCE_ORDER.compare(r.source(), kept.source()) < 0;
        if (earlier) {
          first.put(r.id(), r);
        }
        duplicates.computeIfAbsent(r.id(), id -> new ArrayList<>()).add(earlier ? kept.source() : r.source());
      }
      for (PromptRecord r : first.values()) {
        out.get(OUTPUT).output(r);
        for (SourcePosition duplicate : duplicates.getOrDefault(r.id(), List.of())) {
          out.get(DeadLetter.TAG).output(DeadLetter.of(duplicate, r.id(), ErrorKind.DUPLICATE_ID,
              "id \"" + r.id() + "\" is already used by the record at " + r.source()));
        }
      }
    }
  }
}
