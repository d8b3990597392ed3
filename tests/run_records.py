"""What a finished run leaves in TensorBoard, read back the way TensorBoard reads it (its own event reader)."""
import glob
import os

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def scalars(run_dir):
    tags = {}
    for path in glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*")):
        acc = EventAccumulator(path, size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            tags.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return tags


def logged_hparams(run_dir) -> dict:
    """The hyper-parameters a run logged to TensorBoard's HParams dashboard, read back from the event files."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    out = {}
    for path in glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*")):
        acc = EventAccumulator(path)
        acc.Reload()
        try:
            contents = acc.PluginTagToContent("hparams").values()
        except KeyError:  # an event file without hyper-parameters
            continue
        for content in contents:
            data = HParamsPluginData.FromString(content)
            if data.HasField("session_start_info"):
                for key, value in data.session_start_info.hparams.items():
                    out[key] = value.number_value if value.HasField("number_value") else value.string_value
    return out

